package awsemu

// admit applies request-rate limits and dispatcher-level faults before a
// handler runs (lock held).
func (e *Emulator) admit(c *Call) *APIError {
	if !e.limits.Allow(c, e.clock.Wall()) {
		return ThrottleError(c.Service)
	}
	if e.faults.Fires(FaultThrottle, c, c.Action) {
		return ThrottleError(c.Service)
	}
	if e.faults.Fires(FaultInternalError, c, c.Action) {
		return InternalError(c.Service)
	}
	return nil
}
