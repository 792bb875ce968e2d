package awsemu

func (e *Emulator) handleSTS(c *Call) (any, *APIError) { return e.sts.Handle(c) }
