package awsemu

import (
	"fmt"
	"net/url"
	"sort"
	"sync"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// holds lets a test stop calls of a chosen action until it releases them:
// an interrupt test holds CopyImage, waits until the plugin's call is
// blocked, then signals the plugin at exactly that step. Calls are held
// after authentication and admission, before the service handles them, so
// a released call is served as if it had just arrived.
type holds struct {
	mu    sync.Mutex
	seq   int
	rules map[string]*hold
}

// hold is one rule: the calls it matches wait on release.
type hold struct {
	ID      string `json:"id"`
	Service string `json:"service,omitempty"`
	Action  string `json:"action"`
	Account string `json:"account,omitempty"`
	Region  string `json:"region,omitempty"`
	// SkipDryRun lets DryRun calls through: the hold stops only the call
	// that would change something.
	SkipDryRun bool `json:"skip_dry_run,omitempty"`
	// Waiting is how many calls are blocked now; Held how many it has
	// held in all.
	Waiting int `json:"waiting"`
	Held    int `json:"held"`

	release chan struct{}
}

func (h *hold) matches(c *core.Call) bool {
	return h.Action == c.Action && (!h.SkipDryRun || !c.DryRun()) && (h.Service == "" || h.Service == c.Service) &&
		(h.Account == "" || h.Account == c.Account) && (h.Region == "" || h.Region == c.Region)
}

// add starts holding the calls a query names (action required; service,
// account and region optional).
func (hs *holds) add(q url.Values) (*hold, error) {
	if q.Get("action") == "" {
		return nil, fmt.Errorf("action: required, e.g. POST /_emu/hold?action=CopyImage&account=222222222222")
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.rules == nil {
		hs.rules = map[string]*hold{}
	}
	hs.seq++
	h := &hold{ID: fmt.Sprintf("h%d", hs.seq), Service: q.Get("service"), Action: q.Get("action"),
		Account: q.Get("account"), Region: q.Get("region"), SkipDryRun: q.Get("skip_dry_run") != "", release: make(chan struct{})}
	hs.rules[h.ID] = h
	return h, nil
}

// wait blocks c while a hold matches it, or until done closes.
func (hs *holds) wait(c *core.Call, done <-chan struct{}) {
	hs.mu.Lock()
	var h *hold
	for _, r := range hs.rules {
		if r.matches(c) {
			h = r
			break
		}
	}
	if h == nil {
		hs.mu.Unlock()
		return
	}
	h.Waiting++
	h.Held++
	release := h.release
	hs.mu.Unlock()
	select {
	case <-release:
	case <-done:
	}
	hs.mu.Lock()
	h.Waiting--
	hs.mu.Unlock()
}

// release ends one hold (or all) and lets its calls through.
func (hs *holds) release(id string, all bool) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if all {
		for id, h := range hs.rules {
			close(h.release)
			delete(hs.rules, id)
		}
		return nil
	}
	h, ok := hs.rules[id]
	if !ok {
		return fmt.Errorf("id: no hold %q (GET /_emu/held lists them)", id)
	}
	close(h.release)
	delete(hs.rules, id)
	return nil
}

// list is every hold, by ID.
func (hs *holds) list() []hold {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	out := make([]hold, 0, len(hs.rules))
	for _, h := range hs.rules {
		out = append(out, hold{ID: h.ID, Service: h.Service, Action: h.Action, Account: h.Account, Region: h.Region, Waiting: h.Waiting, Held: h.Held})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
