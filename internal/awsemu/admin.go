package awsemu

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/checker"
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
//	GET  /_emu/check?…          the invariant checker's report
//	POST /_emu/advance?by=1h    move the emulator clock forward
//	POST /_emu/save             write the state file now
//	POST /_emu/hold?action=…    hold matching calls (service, account, region optional) until released
//	POST /_emu/release?id=…     let a hold's calls through (all=1: every hold)
//	GET  /_emu/held             holds and the calls waiting on each
//	POST /_emu/imds?instance=…  the instance's metadata service on a loopback port: {"url":…}
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := strings.TrimPrefix(r.URL.Path, adminPrefix)
	write := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	switch name {
	case "health":
		write(map[string]any{"ok": true, "time": e.Now()})
	case "audit":
		f, err := auditFilterFromQuery(q)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		entries := e.Audit(f)
		if entries == nil {
			entries = []AuditEntry{}
		}
		write(entries)
	case "counts":
		f, err := auditFilterFromQuery(q)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		write(e.CallCounts(f))
	case "grants":
		write(e.Grants())
	case "cloudtrail":
		f, err := auditFilterFromQuery(q)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		write(map[string]any{"Records": e.CloudTrail(f)})
	case "state":
		data, err := e.StateJSON()
		if err != nil {
			fail(http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
	case "world":
		write(e.world)
	case "check":
		opts, err := checker.OptionsFromQuery(q)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		write(e.Check(opts))
	case "advance":
		if r.Method != http.MethodPost {
			fail(http.StatusMethodNotAllowed, "use POST /_emu/advance?by=DURATION")
			return
		}
		d, err := time.ParseDuration(q.Get("by"))
		if err != nil || d < 0 {
			fail(http.StatusBadRequest, "by: "+strconv.Quote(q.Get("by"))+" must be a positive Go duration such as 90s or 2h")
			return
		}
		e.Advance(d)
		write(map[string]any{"time": e.Now()})
	case "save":
		if r.Method != http.MethodPost {
			fail(http.StatusMethodNotAllowed, "use POST /_emu/save")
			return
		}
		if err := e.SaveState(); err != nil {
			fail(http.StatusInternalServerError, err.Error())
			return
		}
		write(map[string]any{"saved": e.opts.StatePath})
	case "hold":
		if r.Method != http.MethodPost {
			fail(http.StatusMethodNotAllowed, "use POST /_emu/hold?action=ACTION[&service=&account=&region=]")
			return
		}
		h, err := e.holds.add(q)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		write(map[string]string{"id": h.ID})
	case "release":
		if r.Method != http.MethodPost {
			fail(http.StatusMethodNotAllowed, "use POST /_emu/release?id=ID or ?all=1")
			return
		}
		if err := e.holds.release(q.Get("id"), q.Get("all") != ""); err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		write(map[string]bool{"released": true})
	case "held":
		write(e.holds.list())
	case "imds":
		if r.Method != http.MethodPost {
			fail(http.StatusMethodNotAllowed, "use POST /_emu/imds?instance=i-…")
			return
		}
		url, err := e.ServeIMDS(q.Get("instance"))
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		write(map[string]string{"instance": q.Get("instance"), "url": url})
	default:
		fail(http.StatusNotFound, "unknown admin path "+r.URL.Path+"; see docs/emulator.md")
	}
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
