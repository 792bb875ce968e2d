package awsemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// imdsServers are the per-instance metadata services: what an instance
// reaches at 169.254.169.254 is, here, one loopback port per instance (a
// VM's guestfwd, or a test's AWS_EC2_METADATA_SERVICE_ENDPOINT, points at
// it).
type imdsServers struct {
	mu      sync.Mutex
	servers map[string]*imdsServer // by instance ID
}

type imdsServer struct {
	url  string
	http *http.Server
}

// ServeIMDS starts (once) the metadata service of an instance on a
// loopback port and returns its URL. It answers while the instance runs.
func (e *Emulator) ServeIMDS(instanceID string) (string, error) {
	e.imds.mu.Lock()
	defer e.imds.mu.Unlock()
	if s, ok := e.imds.servers[instanceID]; ok {
		return s.url, nil
	}
	if !e.ec2.InstanceExists(instanceID) {
		return "", fmt.Errorf("instance %s does not exist", instanceID)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("metadata service of %s: %w", instanceID, err)
	}
	s := &imdsServer{url: "http://" + ln.Addr().String(),
		http: &http.Server{Handler: e.ec2.IMDS(instanceID), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.http.Serve(ln) }()
	if e.imds.servers == nil {
		e.imds.servers = map[string]*imdsServer{}
	}
	e.imds.servers[instanceID] = s
	return s.url, nil
}

// close stops every metadata service.
func (s *imdsServers) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, srv := range s.servers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := srv.http.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = srv.http.Close()
		}
		cancel()
		delete(s.servers, id)
	}
}
