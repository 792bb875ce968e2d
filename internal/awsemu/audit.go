package awsemu

// Audit returns the audit entries that match f, oldest first.
func (e *Emulator) Audit(f AuditFilter) []AuditEntry { return e.audit.Entries(f) }

// CallCounts counts the matching audit entries by service, action, account
// and region, sorted.
func (e *Emulator) CallCounts(f AuditFilter) []CallCount { return e.audit.Counts(f) }
