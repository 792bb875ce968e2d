package ebs

import (
	"os"
	"testing"
)

// TestMain keeps every test on the loopback: a build whose temporary
// security group admits this machine's public IP would otherwise ask
// https://checkip.amazonaws.com. Tests that need an answer serve one
// (fakeCheckIP).
func TestMain(m *testing.M) {
	if os.Getenv(EnvCheckIPURL) == "" {
		os.Setenv(EnvCheckIPURL, "http://127.0.0.1:1/no-checkip-in-tests")
	}
	os.Exit(m.Run())
}
