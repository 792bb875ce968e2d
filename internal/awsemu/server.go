package awsemu

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is an emulator listening on a loopback address.
type Server struct {
	emu  *Emulator
	ln   net.Listener
	http *http.Server
	url  string
	done chan error

	stopOnce sync.Once
	stopErr  error
}

// Listen starts an emulator on addr, which must be a loopback address
// ("127.0.0.1:4566", "127.0.0.1:0" for any free port).
func Listen(addr string, opts Options) (*Server, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	emu, err := New(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		emu.Close()
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	s := &Server{
		emu:  emu,
		ln:   ln,
		http: &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: cmp.Or(opts.ReadTimeout, 30*time.Second)},
		url:  "http://" + ln.Addr().String(),
		done: make(chan error, 1),
	}
	go func() { s.done <- s.http.Serve(ln) }()
	return s, nil
}

// checkLoopback refuses addresses other machines could reach.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w (expected HOST:PORT, e.g. 127.0.0.1:4566)", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: the emulator listens on loopback only; use 127.0.0.1:PORT", addr)
	}
	return nil
}

// URL is the endpoint of every service: http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// Emulator is the emulator behind the server.
func (s *Server) Emulator() *Emulator { return s.emu }

// Shutdown stops accepting calls, waits for the ones in flight until ctx
// ends, then closes what is left and the emulator (saving the state file).
// Connections that clients opened but never used don't hold it up. Only the
// first call does the work; later ones return its result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx) })
	return s.stopErr
}

func (s *Server) shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = s.http.Close()
	}
	if serveErr := <-s.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if cerr := s.emu.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Close is Shutdown with a one-second grace period.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// Credentials returns the access key and secret of the account's first user.
func (e *Emulator) Credentials(account string) (accessKey, secretKey string, err error) {
	return e.iam.Credentials(account)
}
