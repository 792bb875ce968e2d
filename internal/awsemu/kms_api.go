package awsemu

// handleKMS serves one KMS JSON 1.1 call; the emulator lock is held.
func (e *Emulator) handleKMS(c *Call) (any, *APIError) {
	return nil, &APIError{400, "UnknownOperationException", ""}
}
