package awsemu

import "github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"

// admit applies request-rate limits and dispatcher-level faults before a
// handler runs (lock held).
func (e *Emulator) admit(c *core.Call) *APIError {
	if !e.limits.Allow(c, e.clock.Wall()) {
		return core.ThrottleError(c.Service)
	}
	if e.faults.Fires(FaultThrottle, c, c.Action) {
		return core.ThrottleError(c.Service)
	}
	if e.faults.Fires(FaultInternalError, c, c.Action) {
		return core.InternalError(c.Service)
	}
	return nil
}
