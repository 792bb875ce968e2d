package main

// The agent's tests reach the emulator's own instance metadata service
// (one per instance, on loopback) through this counting relay, which can
// switch the instance the agent runs as (a disk moved to another instance)
// and can refuse IMDSv2 session tokens (an IMDS that offers only v1) to show
// that the agent never falls back to tokenless requests.

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/instancetest"
)

type imdsRelay struct {
	*httptest.Server
	mu      sync.Mutex
	target  *url.URL
	v1Only  bool // answer the token PUT 404, like an IMDS without v2
	tokens  int  // token PUTs relayed
	noToken int  // other requests without a token (IMDSv1)
}

func startIMDSRelay(t *testing.T, inst instancetest.Instance) *imdsRelay {
	t.Helper()
	r := &imdsRelay{}
	r.setInstance(t, inst)
	// Rewrite (not Director) adds no X-Forwarded-For, which IMDS refuses
	// on a token request.
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		r.mu.Lock()
		defer r.mu.Unlock()
		pr.SetURL(r.target)
	}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		switch {
		case req.URL.Path == "/latest/api/token" && r.v1Only:
			r.mu.Unlock()
			http.NotFound(w, req)
			return
		case req.URL.Path == "/latest/api/token":
			r.tokens++
		case req.Header.Get("X-aws-ec2-metadata-token") == "":
			r.noToken++
		}
		r.mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

// setInstance relays to inst's metadata service from now on.
func (r *imdsRelay) setInstance(t *testing.T, inst instancetest.Instance) {
	u, err := url.Parse(inst.IMDS)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = u
}

func (r *imdsRelay) setV1Only(v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.v1Only = v
}

func (r *imdsRelay) counts() (tokens, noToken int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tokens, r.noToken
}
