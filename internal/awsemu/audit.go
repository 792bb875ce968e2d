package awsemu

// record appends the audit entry of c (lock held).
func (e *Emulator) record(c *Call, apiErr *APIError, status int) {
	entry := AuditEntry{
		Seq:          len(e.audit) + 1,
		Time:         c.Time,
		RequestID:    c.RequestID,
		Service:      c.Service,
		Region:       c.Region,
		Account:      c.Account,
		Principal:    c.Principal,
		PrincipalIAM: c.PrincipalIAM,
		Action:       c.Action,
		Params:       AuditParams(c),
		Notes:        c.Notes,
		Outcome:      "ok",
		HTTPStatus:   status,
	}
	if apiErr != nil {
		entry.Outcome, entry.Message = apiErr.Code, apiErr.Message
	}
	e.audit = append(e.audit, entry)
	e.dirty = true
}

// Audit returns the audit entries that match f, oldest first.
func (e *Emulator) Audit(f AuditFilter) []AuditEntry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.auditEntries(f)
}

// auditEntries is Audit with the lock held (for the checker).
func (e *Emulator) auditEntries(f AuditFilter) []AuditEntry {
	var out []AuditEntry
	start := 0
	if f.SinceSeq > 0 && f.SinceSeq <= len(e.audit) {
		start = f.SinceSeq // Seq is index+1
	}
	for i := start; i < len(e.audit); i++ {
		if f.Match(&e.audit[i]) {
			out = append(out, e.audit[i])
		}
	}
	return out
}

// CallCounts counts the matching audit entries by service, action, account
// and region, sorted.
func (e *Emulator) CallCounts(f AuditFilter) []CallCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.callCounts(f)
}
func (e *Emulator) callCounts(f AuditFilter) []CallCount {
	return CountCalls(e.auditEntries(f))
}
