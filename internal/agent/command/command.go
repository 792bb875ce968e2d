// Package command runs the system tools the agent drives (cryptsetup, mdadm,
// mkfs, mount, systemctl) behind a small Runner interface, so the agent's
// decisions can be tested against a fake. Secrets reach a tool only on its
// standard input or on an inherited pipe, never in its arguments or a file.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Cmd is one command to run.
type Cmd struct {
	Name string   // program name ("cryptsetup") or path
	Args []string // never carries a secret
	// Stdin is written to the command's standard input. It may be a secret:
	// the runner never logs or copies it, and the caller clears it after Run.
	Stdin []byte
	// Pipes are handed to the command as inherited pipes, the first as file
	// descriptor 3 (/dev/fd/3), the next as 4, and so on. Secrets, like Stdin.
	Pipes [][]byte
}

// String is the command line (arguments only: Stdin and Pipes are never
// shown).
func (c Cmd) String() string {
	return strings.Join(append([]string{c.Name}, c.Args...), " ")
}

// Result is what a command printed.
type Result struct {
	Stdout, Stderr []byte
}

// ExitError is a command that ran and exited with a non-zero status.
type ExitError struct {
	Cmd    string // the command line
	Code   int
	Stderr string // trimmed
}

// Error names the program and its action ("cryptsetup luksFormat"), the
// status and what the program said; the full line is in Cmd.
func (e *ExitError) Error() string {
	name := e.Cmd
	if f := strings.Fields(e.Cmd); len(f) > 0 {
		name = filepath.Base(f[0])
		if len(f) > 1 && !strings.HasPrefix(f[1], "-") && !strings.HasPrefix(f[1], "/") {
			name += " " + f[1]
		}
	}
	if e.Stderr == "" {
		return fmt.Sprintf("%s: exit status %d", name, e.Code)
	}
	return fmt.Sprintf("%s: exit status %d: %s", name, e.Code, e.Stderr)
}

// ExitCode returns the exit status of a command that ran and failed, or -1
// when err is not an ExitError.
func ExitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

// tidy joins a tool's distinct stderr lines with "; " (cryptsetup repeats
// itself when it retries an operation).
func tidy(stderr string) string {
	var lines []string
	seen := map[string]bool{}
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !seen[l] {
			seen[l] = true
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// Runner runs commands. Run returns an *ExitError when the command ran and
// failed, and another error when it could not run at all.
type Runner interface {
	Run(ctx context.Context, cmd Cmd) (Result, error)
}

// Exec runs commands with os/exec.
type Exec struct {
	// SearchDirs are tried, in order, for a command not found on $PATH
	// (systemd units and minimal inits often have a short PATH). Default:
	// /usr/sbin, /sbin, /usr/bin, /bin.
	SearchDirs []string
}

func (e Exec) lookPath(name string) (string, error) {
	if strings.ContainsRune(name, '/') {
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs := e.SearchDirs
	if dirs == nil {
		dirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (not on PATH nor in %s)", name, strings.Join(dirs, ", "))
}

// Run implements Runner.
func (e Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	path, err := e.lookPath(c.Name)
	if err != nil {
		return Result{}, err
	}
	cmd := exec.CommandContext(ctx, path, c.Args...)
	// Stable, untranslated messages; nothing else of the environment changes.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if c.Stdin != nil {
		// bytes.Reader is an io.WriterTo: exec copies straight from the
		// caller's slice into the pipe, leaving no copy of the secret behind.
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	var readEnds []*os.File
	defer func() {
		for _, f := range readEnds {
			f.Close()
		}
	}()
	writeErrs := make(chan error, len(c.Pipes))
	for _, content := range c.Pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return Result{}, fmt.Errorf("%s: making a pipe: %w", c, err)
		}
		readEnds = append(readEnds, r)
		go func(content []byte, w *os.File) {
			_, err := w.Write(content)
			w.Close()
			writeErrs <- err
		}(content, w)
	}
	cmd.ExtraFiles = readEnds
	runErr := cmd.Run()
	for _, f := range readEnds {
		f.Close()
	}
	readEnds = nil
	// A command that exits without reading all of a pipe makes its write
	// fail (EPIPE) once the read end is closed.
	var writeErr error
	for range c.Pipes {
		if err := <-writeErrs; err != nil && writeErr == nil {
			writeErr = err
		}
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if runErr == nil && writeErr != nil {
		return res, fmt.Errorf("%s: it exited without reading what was written to its pipe: %w", c, writeErr)
	}
	if runErr == nil {
		return res, nil
	}
	var ee *exec.ExitError
	if errors.As(runErr, &ee) && ee.ExitCode() >= 0 {
		return res, &ExitError{Cmd: c.String(), Code: ee.ExitCode(), Stderr: tidy(stderr.String())}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s: %w", c, ctx.Err())
	}
	return res, fmt.Errorf("%s: %w", c, runErr)
}
