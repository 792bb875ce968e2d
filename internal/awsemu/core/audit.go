package core

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// AuditEntry is one API call as the emulator saw it.
type AuditEntry struct {
	Seq          int               `json:"seq"`
	Time         time.Time         `json:"time"`
	RequestID    string            `json:"request_id"`
	Service      string            `json:"service"`
	Region       string            `json:"region"`
	Account      string            `json:"account,omitempty"`
	Principal    string            `json:"principal,omitempty"`
	PrincipalIAM string            `json:"principal_iam,omitempty"`
	AccessKeyID  string            `json:"access_key_id,omitempty"`
	Action       string            `json:"action"`
	Params       map[string]string `json:"params,omitempty"`
	Notes        map[string]string `json:"notes,omitempty"`
	// Outcome is "ok" or the error code.
	Outcome    string `json:"outcome"`
	HTTPStatus int    `json:"http_status"`
	Message    string `json:"message,omitempty"`
}

// AuditFilter selects audit entries; empty fields match everything.
type AuditFilter struct {
	Service   string
	Account   string
	Region    string
	Principal string // matches Principal or PrincipalIAM
	Action    string
	Outcome   string // "ok", "error" (any error) or an error code
	SinceSeq  int    // entries with Seq > SinceSeq
}

func (f AuditFilter) Match(a *AuditEntry) bool {
	switch {
	case f.Service != "" && f.Service != a.Service,
		f.Account != "" && f.Account != a.Account,
		f.Region != "" && f.Region != a.Region,
		f.Action != "" && f.Action != a.Action,
		f.Principal != "" && f.Principal != a.Principal && f.Principal != a.PrincipalIAM,
		f.SinceSeq > 0 && a.Seq <= f.SinceSeq:
		return false
	}
	switch f.Outcome {
	case "":
		return true
	case "error":
		return a.Outcome != "ok"
	default:
		return f.Outcome == a.Outcome
	}
}

// sensitiveParam reports parameters never written to the audit.
func sensitiveParam(name string) bool {
	switch name {
	case "Plaintext", "CiphertextBlob", "SourceCiphertextBlob":
		return true
	}
	return false
}

// AuditParams flattens the request parameters worth keeping.
func AuditParams(c *Call) map[string]string {
	out := map[string]string{}
	for k, v := range c.Params {
		if k == "Action" || k == "Version" || sensitiveParam(k) || len(v) == 0 {
			continue
		}
		out[k] = strings.Join(v, ",")
	}
	if c.Service == "kms" && len(c.Body) > 0 {
		var body map[string]any
		if json.Unmarshal(c.Body, &body) == nil {
			for k, v := range body {
				if sensitiveParam(k) {
					continue
				}
				switch v := v.(type) {
				case string:
					out[k] = v
				case bool, float64:
					out[k] = fmt.Sprint(v)
				case []any:
					parts := make([]string, 0, len(v))
					for _, item := range v {
						parts = append(parts, fmt.Sprint(item))
					}
					out[k] = strings.Join(parts, ",")
				default:
					if b, err := json.Marshal(v); err == nil {
						out[k] = string(b)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// CallCount is the number of calls for one action, account and region.
type CallCount struct {
	Service string `json:"service"`
	Action  string `json:"action"`
	Account string `json:"account"`
	Region  string `json:"region"`
	Calls   int    `json:"calls"`
	Errors  int    `json:"errors"`
}

// CountCalls counts entries by service, action, account and region, sorted
// by those four in turn.
func CountCalls(entries []AuditEntry) []CallCount {
	idx := map[[4]string]*CallCount{}
	for _, a := range entries {
		k := [4]string{a.Service, a.Action, a.Account, a.Region}
		cc, ok := idx[k]
		if !ok {
			cc = &CallCount{Service: a.Service, Action: a.Action, Account: a.Account, Region: a.Region}
			idx[k] = cc
		}
		cc.Calls++
		if a.Outcome != "ok" {
			cc.Errors++
		}
	}
	out := make([]CallCount, 0, len(idx))
	for _, cc := range idx {
		out = append(out, *cc)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Action != b.Action {
			return a.Action < b.Action
		}
		if a.Account != b.Account {
			return a.Account < b.Account
		}
		return a.Region < b.Region
	})
	return out
}

// Audit is the record of every call, in order. It keeps at most a limit
// of entries in memory: the oldest go first, and, when the emulator has a
// state file, only once the audit log on disk has them. Sequence numbers
// keep counting, so a SinceSeq mark stays valid. Safe for concurrent use.
type Audit struct {
	mu      sync.Mutex
	entries []AuditEntry
	base    int  // Seq of the entry before entries[0] (entries dropped so far)
	saved   int  // Seq of the last entry written to the audit log
	keep    bool // entries not yet saved may not be dropped
	limit   int
}

// NewAudit makes an audit that keeps at most limit entries in memory (0:
// 200,000); with persisted, unsaved entries are never dropped.
func NewAudit(limit int, persisted bool) *Audit {
	if limit <= 0 {
		limit = 200_000
	}
	return &Audit{limit: limit, keep: persisted}
}

// Record appends the entry of call c with its outcome.
func (a *Audit) Record(c *Call, apiErr *APIError, status int) {
	entry := AuditEntry{
		Time:         c.Time,
		RequestID:    c.RequestID,
		Service:      c.Service,
		Region:       c.Region,
		Account:      c.Account,
		Principal:    c.Principal,
		PrincipalIAM: c.PrincipalIAM,
		AccessKeyID:  c.AccessKeyID,
		Action:       c.Action,
		Params:       AuditParams(c),
		Notes:        c.Notes,
		Outcome:      "ok",
		HTTPStatus:   status,
	}
	if apiErr != nil {
		entry.Outcome, entry.Message = apiErr.Code, apiErr.Message
	}
	a.mu.Lock()
	entry.Seq = a.base + len(a.entries) + 1
	a.entries = append(a.entries, entry)
	a.trim()
	a.mu.Unlock()
}

// trim drops the oldest tenth of the entries when over the limit (lock
// held), only saved ones when the audit is persisted.
func (a *Audit) trim() {
	if a.limit <= 0 || len(a.entries) <= a.limit {
		return
	}
	n := max(1, a.limit/10)
	if a.keep {
		n = min(n, a.saved-a.base)
	}
	if n <= 0 {
		return
	}
	a.entries = append([]AuditEntry(nil), a.entries[n:]...)
	a.base += n
}

// index is the position in entries of the entry after seq (lock held).
func (a *Audit) index(seq int) int {
	return min(max(seq-a.base, 0), len(a.entries))
}

// Entries returns the entries that match f, oldest first (of those still
// in memory).
func (a *Audit) Entries(f AuditFilter) []AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AuditEntry
	for i := a.index(f.SinceSeq); i < len(a.entries); i++ {
		if f.Match(&a.entries[i]) {
			out = append(out, a.entries[i])
		}
	}
	return out
}

// Counts counts the entries that match f by service, action, account and
// region.
func (a *Audit) Counts(f AuditFilter) []CallCount { return CountCalls(a.Entries(f)) }

// Len is the number of entries ever recorded, the Seq of the last one.
func (a *Audit) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.base + len(a.entries)
}

// Dropped is how many of the oldest entries are no longer in memory.
func (a *Audit) Dropped() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.base
}

// At returns the entry with sequence number seq (1-based), if in memory.
func (a *Audit) At(seq int) (AuditEntry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := seq - a.base - 1
	if seq < 1 || i < 0 || i >= len(a.entries) {
		return AuditEntry{}, false
	}
	return a.entries[i], true
}

// Load replaces the entries with ones read back from the audit log.
func (a *Audit) Load(entries []AuditEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries, a.base = entries, 0
	a.saved = len(entries)
	a.trim()
}

// TakeUnsaved returns the entries not yet written to the audit log and
// counts them as written. Entries never change once recorded, so the
// caller may encode them without the lock.
func (a *Audit) TakeUnsaved() []AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.entries[a.index(a.saved):len(a.entries):len(a.entries)]
	a.saved = a.base + len(a.entries)
	return out
}

// LastNoting returns the newest entry one of whose notes has the value v
// (the call that created resource v, say).
func (a *Audit) LastNoting(v string) (AuditEntry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.entries) - 1; i >= 0; i-- {
		for _, n := range a.entries[i].Notes {
			if n == v {
				return a.entries[i], true
			}
		}
	}
	return AuditEntry{}, false
}
