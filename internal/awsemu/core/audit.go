package core

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
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
