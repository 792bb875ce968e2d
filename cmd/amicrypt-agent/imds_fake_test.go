package main

// A minimal IMDSv2 for the agent's tests, on loopback, until the emulator
// serves instance metadata itself. It lives in this one file so it is easy
// to replace: tests call startIMDS and read its URL.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

type fakeIMDS struct {
	*httptest.Server
	mu         sync.Mutex
	instanceID string
	account    string
	region     string
	role       string // "" : no instance profile
	v1Only     bool   // answer the token PUT 404, like an IMDS without v2
	tokens     int    // tokens handed out
	noToken    int    // GETs without a token (IMDSv1), answered 401
}

const fakeIMDSToken = "AQAEAFakeIMDSv2Token=="

func startIMDS(t *testing.T, account, region, instanceID, role string) *fakeIMDS {
	t.Helper()
	f := &fakeIMDS{account: account, region: region, instanceID: instanceID, role: role}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeIMDS) setInstance(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instanceID = id
}

func (f *fakeIMDS) setV1Only(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.v1Only = v
}

func (f *fakeIMDS) counts() (tokens, noToken int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens, f.noToken
}

func (f *fakeIMDS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		if f.v1Only {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, "", http.StatusForbidden)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		f.tokens++
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		fmt.Fprint(w, fakeIMDSToken)
		return
	}
	if r.Header.Get("X-aws-ec2-metadata-token") != fakeIMDSToken {
		f.noToken++
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	switch p := r.URL.Path; {
	case p == "/latest/dynamic/instance-identity/document":
		json.NewEncoder(w).Encode(map[string]any{
			"accountId": f.account, "region": f.region, "instanceId": f.instanceID, "availabilityZone": f.region + "a",
			"architecture": "x86_64", "imageId": "ami-0123456789abcdef0", "instanceType": "i4i.large", "privateIp": "10.0.0.10",
			"pendingTime": "2026-01-01T00:00:00Z", "version": "2017-09-30",
		})
	case p == "/latest/meta-data/iam/security-credentials/" && f.role != "":
		fmt.Fprintln(w, f.role)
	case p == "/latest/meta-data/instance-id":
		fmt.Fprint(w, f.instanceID)
	case strings.HasPrefix(p, "/latest/meta-data/iam/"):
		http.NotFound(w, r)
	default:
		http.NotFound(w, r)
	}
}
