package command

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestExec(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		cmd        Cmd
		wantOut    string
		wantCode   int // -1: no ExitError expected
		wantErrSub string
	}{
		{name: "stdin", cmd: Cmd{Name: "cat", Stdin: []byte("secret\x00bytes")}, wantOut: "secret\x00bytes", wantCode: -1},
		{name: "pipes on fd 3 and 4", cmd: Cmd{Name: "sh", Args: []string{"-c", "cat /dev/fd/3; echo; cat /dev/fd/4"},
			Pipes: [][]byte{[]byte("old key"), []byte("new key")}}, wantOut: "old key\nnew key", wantCode: -1},
		{name: "large pipe, not read", cmd: Cmd{Name: "true", Pipes: [][]byte{make([]byte, 1<<20)}}, wantCode: -1, wantErrSub: "without reading what was written to its pipe"},
		{name: "exit status", cmd: Cmd{Name: "sh", Args: []string{"-c", "echo boom >&2; exit 4"}}, wantCode: 4, wantErrSub: "sh: exit status 4: boom"},
		{name: "repeated stderr", cmd: Cmd{Name: "sh", Args: []string{"-c", "printf 'a\\nb\\na\\nb\\n' >&2; exit 1"}}, wantCode: 1, wantErrSub: "exit status 1: a; b"},
		{name: "missing program", cmd: Cmd{Name: "amicrypt-no-such-tool"}, wantCode: -1, wantErrSub: "amicrypt-no-such-tool is not installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Exec{SearchDirs: []string{t.TempDir()}}.Run(ctx, tt.cmd)
			if tt.wantErrSub == "" && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tt.wantErrSub != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrSub)) {
				t.Fatalf("Run error = %v, want one containing %q", err, tt.wantErrSub)
			}
			if got := ExitCode(err); got != tt.wantCode {
				t.Errorf("ExitCode = %d, want %d", got, tt.wantCode)
			}
			if strings.TrimSpace(string(res.Stdout)) != tt.wantOut {
				t.Errorf("stdout %q, want %q", res.Stdout, tt.wantOut)
			}
		})
	}
}

func TestCmdStringHidesSecrets(t *testing.T) {
	c := Cmd{Name: "cryptsetup", Args: []string{"open", "--key-file", "-", "/dev/x", "y"}, Stdin: []byte("SECRET"), Pipes: [][]byte{[]byte("PIPED")}}
	s := c.String()
	if strings.Contains(s, "SECRET") || strings.Contains(s, "PIPED") {
		t.Fatalf("Cmd.String shows a secret: %s", s)
	}
	err := error(&ExitError{Cmd: s, Code: 2})
	if ExitCode(errors.Join(errors.New("ctx"), err)) != 2 {
		t.Error("ExitCode does not see a wrapped ExitError")
	}
}
