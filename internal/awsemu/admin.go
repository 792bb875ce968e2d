package awsemu

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/checker"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// serveAdmin serves /_emu/: a path no AWS API uses.
//
//	GET  /_emu/health           {"ok":true}
//	GET  /_emu/audit?…          audit entries (filters: service, account, region, principal, action, outcome, since)
//	GET  /_emu/counts?…         call counts by service, action, account, region (same filters)
//	GET  /_emu/grants           live KMS grants
//	GET  /_emu/cloudtrail?…     KMS calls as CloudTrail records them (audit filters)
//	GET  /_emu/state            the state, as the state file stores it
//	GET  /_emu/world            the world
//	GET  /_emu/model            time scale, cross-region factor, latency model and quotas
//	GET  /_emu/check?…          the invariant checker's report
//	POST /_emu/advance?by=1h    move the emulator clock forward
//	POST /_emu/save             write the state file now
//	POST /_emu/hold?action=…    hold matching calls (service, account, region, skip_dry_run optional) until released
//	POST /_emu/release?id=…     let a hold's calls through (all=1: every hold)
//	GET  /_emu/held             holds and the calls waiting on each
//	POST /_emu/imds?instance=…  the instance's metadata service on a loopback port: {"url":…}
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, adminPrefix)
	ep, ok := e.adminEndpoints()[name]
	if !ok {
		writeAdminError(w, http.StatusNotFound, "unknown admin path "+r.URL.Path+"; see docs/emulator.md")
		return
	}
	if ep.post && r.Method != http.MethodPost {
		writeAdminError(w, http.StatusMethodNotAllowed, "use POST "+adminPrefix+ep.usage)
		return
	}
	v, status, err := ep.serve(r.URL.Query())
	if err != nil {
		writeAdminError(w, status, err.Error())
		return
	}
	if raw, ok := v.([]byte); ok {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// adminEndpoint is one /_emu/ path: post says it changes the emulator and
// takes POST only; serve returns the JSON value (or raw JSON bytes) to write,
// or the status and error to report.
type adminEndpoint struct {
	post  bool
	usage string
	serve func(q url.Values) (any, int, error)
}

func (e *Emulator) adminEndpoints() map[string]adminEndpoint {
	bad := http.StatusBadRequest
	withFilter := func(f func(AuditFilter) any) func(url.Values) (any, int, error) {
		return func(q url.Values) (any, int, error) {
			filter, err := auditFilterFromQuery(q)
			if err != nil {
				return nil, bad, err
			}
			return f(filter), 0, nil
		}
	}
	return map[string]adminEndpoint{
		"health": {serve: func(url.Values) (any, int, error) {
			return map[string]any{"ok": true, "time": e.Now()}, 0, nil
		}},
		"audit": {serve: withFilter(func(f AuditFilter) any {
			if entries := e.Audit(f); entries != nil {
				return entries
			}
			return []AuditEntry{}
		})},
		"counts": {serve: withFilter(func(f AuditFilter) any { return e.CallCounts(f) })},
		"grants": {serve: func(url.Values) (any, int, error) { return e.Grants(), 0, nil }},
		"cloudtrail": {serve: withFilter(func(f AuditFilter) any {
			return map[string]any{"Records": e.CloudTrail(f)}
		})},
		"state": {serve: func(url.Values) (any, int, error) {
			data, err := e.StateJSON()
			return data, http.StatusInternalServerError, err
		}},
		"model": {serve: func(url.Values) (any, int, error) { return e.Model(), 0, nil }},
		"world": {serve: func(url.Values) (any, int, error) { return e.world, 0, nil }},
		"check": {serve: func(q url.Values) (any, int, error) {
			opts, err := checker.OptionsFromQuery(q)
			if err != nil {
				return nil, bad, err
			}
			return e.Check(opts), 0, nil
		}},
		"advance": {post: true, usage: "advance?by=DURATION", serve: func(q url.Values) (any, int, error) {
			d, err := time.ParseDuration(q.Get("by"))
			if err != nil || d < 0 {
				return nil, bad, errors.New("by: " + strconv.Quote(q.Get("by")) + " must be a positive Go duration such as 90s or 2h")
			}
			e.Advance(d)
			return map[string]any{"time": e.Now()}, 0, nil
		}},
		"save": {post: true, usage: "save", serve: func(url.Values) (any, int, error) {
			if err := e.SaveState(); err != nil {
				return nil, http.StatusInternalServerError, err
			}
			return map[string]any{"saved": e.opts.StatePath}, 0, nil
		}},
		"hold": {post: true, usage: "hold?action=ACTION[&service=&account=&region=&skip_dry_run=1]", serve: func(q url.Values) (any, int, error) {
			h, err := e.holds.add(q)
			if err != nil {
				return nil, bad, err
			}
			return map[string]string{"id": h.ID}, 0, nil
		}},
		"release": {post: true, usage: "release?id=ID or ?all=1", serve: func(q url.Values) (any, int, error) {
			if err := e.holds.release(q.Get("id"), q.Get("all") != ""); err != nil {
				return nil, bad, err
			}
			return map[string]bool{"released": true}, 0, nil
		}},
		"held": {serve: func(url.Values) (any, int, error) { return e.holds.list(), 0, nil }},
		"imds": {post: true, usage: "imds?instance=i-…", serve: func(q url.Values) (any, int, error) {
			u, err := e.ServeIMDS(q.Get("instance"))
			if err != nil {
				return nil, bad, err
			}
			return map[string]string{"instance": q.Get("instance"), "url": u}, 0, nil
		}},
	}
}

func writeAdminError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func auditFilterFromQuery(q url.Values) (AuditFilter, error) {
	f := AuditFilter{
		Service: q.Get("service"), Account: q.Get("account"), Region: q.Get("region"),
		Principal: q.Get("principal"), Action: q.Get("action"), Outcome: q.Get("outcome"),
	}
	if s := q.Get("since"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return f, &APIError{HTTPStatus: 400, Code: "InvalidParameter", Message: "since: " + strconv.Quote(s) + " must be an audit sequence number"}
		}
		f.SinceSeq = n
	}
	return f, nil
}

// Model is the emulator's timing model and quotas: what a benchmark needs
// to compute the lower bound of a run (GET /_emu/model).
type Model struct {
	core.ClockModel
	Limits Limits `json:"limits"`
}

// Model returns the emulator's timing model and quotas.
func (e *Emulator) Model() Model {
	return Model{ClockModel: e.clock.Model(), Limits: e.opts.Limits}
}
