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

// Audit is the record of every call, in order. Safe for concurrent use.
type Audit struct {
	mu      sync.Mutex
	entries []AuditEntry
	saved   int // entries already written to the audit log
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
	entry.Seq = len(a.entries) + 1
	a.entries = append(a.entries, entry)
	a.mu.Unlock()
}

// Entries returns the entries that match f, oldest first.
func (a *Audit) Entries(f AuditFilter) []AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AuditEntry
	start := 0
	if f.SinceSeq > 0 && f.SinceSeq <= len(a.entries) {
		start = f.SinceSeq // Seq is index+1
	}
	for i := start; i < len(a.entries); i++ {
		if f.Match(&a.entries[i]) {
			out = append(out, a.entries[i])
		}
	}
	return out
}

// Counts counts the entries that match f by service, action, account and
// region.
func (a *Audit) Counts(f AuditFilter) []CallCount { return CountCalls(a.Entries(f)) }

// Len is the number of entries, the Seq of the last one.
func (a *Audit) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries)
}

// At returns the entry with sequence number seq (1-based).
func (a *Audit) At(seq int) (AuditEntry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq < 1 || seq > len(a.entries) {
		return AuditEntry{}, false
	}
	return a.entries[seq-1], true
}

// Load replaces the entries with ones read back from the audit log.
func (a *Audit) Load(entries []AuditEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = entries
	a.saved = len(entries)
}

// TakeUnsaved returns the entries not yet written to the audit log and
// counts them as written. Entries never change once recorded, so the
// caller may encode them without the lock.
func (a *Audit) TakeUnsaved() []AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.entries[a.saved:len(a.entries):len(a.entries)]
	a.saved = len(a.entries)
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
