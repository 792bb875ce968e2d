package awsemu

// faultFires reports whether a fault of kind should happen now for action
// (lock held). Service, account and region filters apply to the call being
// handled.
func (e *Emulator) faultFires(kind FaultKind, action string) bool {
	return e.faults.Fires(kind, e.cur, action)
}
func (e *Emulator) faultFiresFor(kind FaultKind, c *Call, action string) bool {
	return e.faults.Fires(kind, c, action)
}
