package instancestore

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// remote runs commands and uploads files on the build instance through
// Packer's communicator.
type remote struct {
	comm    packersdk.Communicator
	ui      packersdk.Ui
	useSudo bool
}

// result is a finished remote command.
type result struct {
	Command  string
	Stdout   string
	Stderr   string
	ExitCode int
}

// CommandError is a remote command that exited non-zero.
type CommandError struct {
	What string // what the command was for
	result
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: `%s` exited with status %d", e.What, e.Command, e.ExitCode)
	if e.ExitCode == 127 {
		msg += " (command not found)"
	}
	if out := strings.TrimSpace(e.Stderr + "\n" + e.Stdout); out != "" {
		msg += ": " + out
	}
	return msg
}

// privileged wraps a shell command to run as root when use_sudo is set.
// `sudo -n` fails at once, instead of waiting for a password nobody types.
func (r *remote) privileged(command string) string {
	if !r.useSudo {
		return command
	}
	return "sudo -n sh -c " + shellQuote(command)
}

// run runs command and waits for it. With stream, its output goes to the UI
// as it comes; it is captured in any case. A non-zero exit is a
// *CommandError naming what.
func (r *remote) run(ctx context.Context, what, command string, stream bool) (result, error) {
	var stdout, stderr bytes.Buffer
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: &stdout, Stderr: &stderr}
	res := result{Command: command}
	if stream {
		if err := cmd.RunWithUi(ctx, r.comm, r.ui); err != nil {
			return res, fmt.Errorf("%s: running `%s`: %w", what, command, err)
		}
	} else {
		if err := r.comm.Start(ctx, cmd); err != nil {
			return res, fmt.Errorf("%s: starting `%s`: %w", what, command, err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			close(exited)
		}()
		select {
		case <-exited:
		case <-ctx.Done():
			return res, fmt.Errorf("%s: `%s`: %w", what, command, ctx.Err())
		}
	}
	res.ExitCode = cmd.ExitStatus()
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	if res.ExitCode != 0 {
		return res, &CommandError{What: what, result: res}
	}
	return res, nil
}

// upload writes data to path on the build instance with mode.
func (r *remote) upload(path string, data []byte, mode fs.FileMode) error {
	var info os.FileInfo = uploadInfo{name: path[strings.LastIndex(path, "/")+1:], size: int64(len(data)), mode: mode}
	if err := r.comm.Upload(path, bytes.NewReader(data), &info); err != nil {
		return fmt.Errorf("uploading %s: %w", path, err)
	}
	return nil
}

// uploadInfo tells the communicator an upload's name, size and mode.
type uploadInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (i uploadInfo) Name() string       { return i.name }
func (i uploadInfo) Size() int64        { return i.size }
func (i uploadInfo) Mode() fs.FileMode  { return i.mode }
func (i uploadInfo) ModTime() time.Time { return time.Time{} }
func (i uploadInfo) IsDir() bool        { return false }
func (i uploadInfo) Sys() any           { return nil }

// shellQuote quotes s as one POSIX shell word. Hand-written: it is one line
// of the shell's own rule: '...' quotes everything but ', written '\”.
// and no maintained module the project uses offers it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellJoin quotes and joins words into one shell command line.
func shellJoin(words ...string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	return strings.Join(quoted, " ")
}
