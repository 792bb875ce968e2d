package instancestore

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// upload is one file the provisioner sent.
type upload struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// answer is what the build instance replies to a command.
type answer struct {
	Stdout   string
	Stderr   string
	ExitCode int
}

// recordingComm is packer-plugin-sdk's MockCommunicator, which keeps only the
// last call, plus the list of every upload and command in order and a reply
// per command.
type recordingComm struct {
	packersdk.MockCommunicator
	reply func(command string) answer

	mu       sync.Mutex
	uploads  []upload
	commands []string
}

func (c *recordingComm) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	a := c.reply(rc.Command)
	c.mu.Lock()
	c.commands = append(c.commands, rc.Command)
	c.mu.Unlock()
	// The provisioner waits for each command to exit before the next one
	// starts, so setting the mock's reply fields here races with nothing.
	c.StartStdout, c.StartStderr, c.StartExitStatus = a.Stdout, a.Stderr, a.ExitCode
	return c.MockCommunicator.Start(ctx, rc)
}

func (c *recordingComm) Upload(path string, r io.Reader, fi *os.FileInfo) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	var mode os.FileMode
	if fi != nil {
		mode = (*fi).Mode()
	}
	c.mu.Lock()
	c.uploads = append(c.uploads, upload{Path: path, Data: data, Mode: mode})
	c.mu.Unlock()
	return c.MockCommunicator.Upload(path, bytes.NewReader(data), fi)
}

const testStage = "/tmp/amicrypt-instance-store.Ab12Cd34"

// imageReplies answers like a healthy x86_64 image with sudo, cryptsetup
// 2.6.1 and systemd; override picks other answers for matching commands.
func imageReplies(override func(command string) (answer, bool)) func(string) answer {
	return func(command string) answer {
		if override != nil {
			if a, ok := override(command); ok {
				return a
			}
		}
		switch {
		case command == "uname -m":
			return answer{Stdout: "x86_64\n"}
		case strings.HasPrefix(command, "mktemp -d"):
			return answer{Stdout: testStage + "\n"}
		case strings.Contains(command, "self-test.sh"):
			return answer{Stdout: "amicrypt-selftest package-manager dnf\namicrypt-selftest cryptsetup-version 2.6.1\namicrypt-selftest ok dm-crypt\n"}
		case strings.HasPrefix(command, AgentPath+" version"):
			return answer{Stdout: "amicrypt-agent 0.1.0\n"}
		case strings.HasPrefix(command, "systemctl is-enabled"):
			return answer{Stdout: "enabled\n"}
		}
		return answer{}
	}
}

func provision(t *testing.T, raw map[string]interface{}, reply func(string) answer) (*recordingComm, *packersdk.MockUi, error) {
	t.Helper()
	full := map[string]interface{}{"kms_key_id": testKey}
	for k, v := range raw {
		full[k] = v
	}
	p, err := newProvisioner(t, fakeAgents(t), full)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	comm := &recordingComm{reply: reply}
	ui := &packersdk.MockUi{}
	err = p.Provision(context.Background(), ui, comm, map[string]interface{}{})
	return comm, ui, err
}

func TestProvisionUploadsAndCommands(t *testing.T) {
	comm, ui, err := provision(t, map[string]interface{}{
		"devices":            []string{"/dev/nvme1n1"},
		"encryption_context": map[string]string{"team": "payments"},
		"required_by":        []string{"postgresql.service"},
		"kms_timeout":        "90s",
	}, imageReplies(nil))
	if err != nil {
		t.Fatal(err)
	}
	wantCommands := []string{
		"uname -m",
		"mktemp -d /tmp/amicrypt-instance-store.XXXXXXXX",
		"sudo -n sh -c 'sh " + testStage + "/self-test.sh 2 5 systemctl mkfs.ext4'",
		"sudo -n sh -c 'install -D -m 0755 -o root -g root " + testStage + "/amicrypt-agent /usr/local/sbin/amicrypt-agent'",
		"sudo -n sh -c 'install -D -m 0644 -o root -g root " + testStage + "/instance-store.json /etc/amicrypt/instance-store.json'",
		"sudo -n sh -c 'install -D -m 0644 -o root -g root " + testStage + "/amicrypt-instance-store.service /etc/systemd/system/amicrypt-instance-store.service'",
		"sudo -n sh -c 'install -D -m 0644 -o root -g root " + testStage + "/cloud-init.cfg /etc/cloud/cloud.cfg.d/90-amicrypt-instance-store.cfg'",
		"sudo -n sh -c " + shellQuote(forgetCloudInitMounts),
		"/usr/local/sbin/amicrypt-agent version",
		"sudo -n sh -c 'systemctl enable amicrypt-instance-store.service'",
		"systemctl is-enabled amicrypt-instance-store.service",
		"rm -rf " + testStage,
	}
	if got := strings.Join(comm.commands, "\n"); got != strings.Join(wantCommands, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", got, strings.Join(wantCommands, "\n"))
	}

	wantAgent := fakeELF(t, elf.EM_X86_64, false)
	wantUploads := []struct {
		path string
		mode os.FileMode
	}{
		{testStage + "/amicrypt-agent", 0o700},
		{testStage + "/instance-store.json", 0o600},
		{testStage + "/amicrypt-instance-store.service", 0o600},
		{testStage + "/cloud-init.cfg", 0o600},
		{testStage + "/self-test.sh", 0o600},
	}
	if len(comm.uploads) != len(wantUploads) {
		t.Fatalf("%d uploads, want %d: %+v", len(comm.uploads), len(wantUploads), comm.uploads)
	}
	for i, want := range wantUploads {
		if got := comm.uploads[i]; got.Path != want.path || got.Mode != want.mode {
			t.Errorf("upload %d: %s mode %o, want %s mode %o", i, got.Path, got.Mode, want.path, want.mode)
		}
	}
	if !bytes.Equal(comm.uploads[0].Data, wantAgent) {
		t.Error("the uploaded agent is not the embedded linux/amd64 binary")
	}

	var cfg map[string]any
	if err := json.Unmarshal(comm.uploads[1].Data, &cfg); err != nil {
		t.Fatalf("config JSON: %v\n%s", err, comm.uploads[1].Data)
	}
	wantCfg := map[string]any{
		"kms_key_id": testKey, "devices": []any{"/dev/nvme1n1"}, "layout": "single", "mount_point": "/mnt/instance-store",
		"filesystem": "ext4", "encryption_context": map[string]any{"team": "payments"}, "kms_timeout": "90s", "name": "amicrypt",
	}
	gotJSON, _ := json.Marshal(cfg)
	wantJSON, _ := json.Marshal(wantCfg)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("config:\n%s\nwant:\n%s", gotJSON, wantJSON)
	}

	unit := string(comm.uploads[2].Data)
	for _, line := range []string{
		"[Unit]", "Wants=network-online.target", "After=network-online.target", "Before=postgresql.service",
		"[Service]", "Type=oneshot", "RemainAfterExit=yes", "ExecStart=/usr/local/sbin/amicrypt-agent up",
		"TimeoutStartSec=990", // 90s of KMS + 15m of formatting
		"[Install]", "WantedBy=multi-user.target", "RequiredBy=postgresql.service",
	} {
		if !strings.Contains("\n"+unit, "\n"+line+"\n") {
			t.Errorf("unit lacks the line %q:\n%s", line, unit)
		}
	}
	if string(comm.uploads[3].Data) != CloudInitDropIn || !strings.Contains(CloudInitDropIn, "  - [ ephemeral0, null ]\n") {
		t.Errorf("cloud-init drop-in:\n%s", comm.uploads[3].Data)
	}
	if string(comm.uploads[4].Data) != selfTestScript {
		t.Error("the uploaded self-test is not self-test.sh")
	}

	// Never started, never on a real disk, never fstab for our mount.
	for _, cmd := range comm.commands {
		for _, banned := range []string{"systemctl start", "--now", "systemctl restart", "amicrypt-agent up", "/dev/nvme", "/dev/xvd", "/dev/sd", "mkfs", "luksFormat"} {
			if strings.Contains(cmd, banned) && !strings.Contains(cmd, "self-test.sh") {
				t.Errorf("command %q contains %q", cmd, banned)
			}
		}
		if strings.Contains(cmd, "/etc/fstab") && strings.Contains(cmd, ">>") {
			t.Errorf("command %q adds to /etc/fstab", cmd)
		}
	}
	if strings.Contains(selfTestScript, "/dev/nvme") || strings.Contains(selfTestScript, "/dev/xvd") {
		t.Error("the self-test names a real disk")
	}
	if !strings.Contains(ui.SayMessages[len(ui.SayMessages)-1].Message, testKey) {
		t.Errorf("last message does not name the key: %q", ui.SayMessages[len(ui.SayMessages)-1].Message)
	}
}

func TestProvisionSudo(t *testing.T) {
	for _, useSudo := range []bool{true, false} {
		t.Run(map[bool]string{true: "use_sudo", false: "no sudo"}[useSudo], func(t *testing.T) {
			comm, _, err := provision(t, map[string]interface{}{"use_sudo": useSudo}, imageReplies(nil))
			if err != nil {
				t.Fatal(err)
			}
			privileged := 0
			for _, cmd := range comm.commands {
				switch {
				case strings.HasPrefix(cmd, "sudo -n sh -c "):
					privileged++
					if !useSudo {
						t.Errorf("use_sudo = false, yet %q", cmd)
					}
				case strings.Contains(cmd, "sudo"):
					t.Errorf("sudo used other than `sudo -n sh -c`: %q", cmd)
				}
			}
			// self-test, 4 installs, fstab, enable.
			if useSudo && privileged != 7 {
				t.Errorf("%d commands through sudo, want 7: %q", privileged, comm.commands)
			}
			if !useSudo && !slices.Contains(comm.commands, "systemctl enable amicrypt-instance-store.service") {
				t.Errorf("no plain systemctl enable in %q", comm.commands)
			}
		})
	}
}

func TestProvisionArchitecture(t *testing.T) {
	tests := []struct {
		name      string
		config    string
		uname     string
		wantArch  elf.Machine
		wantUname bool
		wantErr   string
	}{
		{name: "x86_64 detected", uname: "x86_64", wantArch: elf.EM_X86_64, wantUname: true},
		{name: "aarch64 detected", uname: "aarch64", wantArch: elf.EM_AARCH64, wantUname: true},
		{name: "arm64 configured, not asked", config: "arm64", uname: "x86_64", wantArch: elf.EM_AARCH64},
		{name: "unsupported machine", uname: "riscv64", wantUname: true, wantErr: `the image's architecture is "riscv64" (uname -m)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := map[string]interface{}{}
			if tc.config != "" {
				raw["architecture"] = tc.config
			}
			comm, _, err := provision(t, raw, imageReplies(func(cmd string) (answer, bool) {
				return answer{Stdout: tc.uname + "\n"}, cmd == "uname -m"
			}))
			if asked := slices.Contains(comm.commands, "uname -m"); asked != tc.wantUname {
				t.Errorf("uname -m asked: %v, want %v", asked, tc.wantUname)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want %q, got %v", tc.wantErr, err)
				}
				if len(comm.uploads) != 0 || len(comm.commands) != 1 {
					t.Errorf("after the error: uploads %d, commands %q", len(comm.uploads), comm.commands)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(comm.uploads[0].Data, fakeELF(t, tc.wantArch, false)) {
				t.Errorf("uploaded agent is not the %s one", tc.wantArch)
			}
		})
	}
}

func TestProvisionSelfTestFailure(t *testing.T) {
	tests := []struct {
		name   string
		output string
		exit   int
		want   []string
	}{
		{
			name:   "no cryptsetup on Debian",
			output: "amicrypt-selftest package-manager apt-get\namicrypt-selftest missing cryptsetup\n",
			exit:   1,
			want:   []string{"cryptsetup is not installed", "`sudo apt-get install -y cryptsetup-bin`"},
		},
		{
			name:   "old cryptsetup and no mkfs on Amazon Linux",
			output: "amicrypt-selftest package-manager dnf\namicrypt-selftest missing mkfs.ext4\namicrypt-selftest cryptsetup-version 2.3.7\namicrypt-selftest too-old cryptsetup\n",
			exit:   1,
			want:   []string{"mkfs.ext4 is not installed", "`sudo dnf install -y e2fsprogs`", "cryptsetup 2.3.7 is older than 2.5", "`sudo dnf install -y cryptsetup`"},
		},
		{
			name: "no loop devices in a container",
			output: "amicrypt-selftest package-manager apt-get\namicrypt-selftest cryptsetup-version 2.6.1\namicrypt-selftest no-loop /dev/loop-control\n" +
				"amicrypt-selftest failed open\namicrypt-selftest detail Cannot use device /tmp/x/volume, name is invalid\n",
			exit: 1,
			want: []string{"dm-crypt does not work on this image: `cryptsetup open`", "Cannot use device", "/dev/loop-control is missing", "skip_self_test = true"},
		},
		{
			name:   "silent failure",
			output: "",
			exit:   3,
			want:   []string{"the self-test exited with status 3 without saying why"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			comm, _, err := provision(t, nil, imageReplies(func(cmd string) (answer, bool) {
				return answer{Stdout: tc.output, ExitCode: tc.exit}, strings.Contains(cmd, "self-test.sh")
			}))
			var selfTest *SelfTestError
			if !errors.As(err, &selfTest) {
				t.Fatalf("want a *SelfTestError, got %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			// Nothing installed or enabled after a failed self-test; the
			// staging directory is still removed.
			for _, cmd := range comm.commands {
				if strings.Contains(cmd, "install -D") || strings.Contains(cmd, "systemctl enable") {
					t.Errorf("ran %q after the self-test failed", cmd)
				}
			}
			if last := comm.commands[len(comm.commands)-1]; last != "rm -rf "+testStage {
				t.Errorf("last command %q, want the staging directory removed", last)
			}
		})
	}
}

func TestProvisionSkipSelfTest(t *testing.T) {
	comm, ui, err := provision(t, map[string]interface{}{"skip_self_test": true}, imageReplies(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range comm.uploads {
		if strings.HasSuffix(u.Path, "self-test.sh") {
			t.Error("self-test uploaded with skip_self_test")
		}
	}
	for _, cmd := range comm.commands {
		if strings.Contains(cmd, "self-test") {
			t.Errorf("self-test run with skip_self_test: %q", cmd)
		}
	}
	if !slices.ContainsFunc(ui.SayMessages, func(m packersdk.SayMessage) bool { return strings.Contains(m.Message, "Self-test skipped") }) {
		t.Errorf("no skip message in %+v", ui.SayMessages)
	}
	if !slices.Contains(comm.commands, "sudo -n sh -c 'systemctl enable amicrypt-instance-store.service'") {
		t.Error("unit not enabled")
	}
}

func TestProvisionFailures(t *testing.T) {
	tests := []struct {
		name    string
		command string // prefix of the command that fails
		answer  answer
		want    []string
	}{
		{name: "no sudo rights", command: "sudo -n sh -c 'sh ", answer: answer{Stderr: "sudo: a password is required\n", ExitCode: 1},
			want: []string{"a password is required"}},
		{name: "agent of the wrong architecture", command: AgentPath + " version", answer: answer{Stderr: "cannot execute binary file: Exec format error\n", ExitCode: 126},
			want: []string{"Exec format error", "is the image's architecture really amd64"}},
		{name: "no systemd", command: "sudo -n sh -c 'systemctl enable", answer: answer{Stderr: "sh: systemctl: not found\n", ExitCode: 127},
			want: []string{"enabling the unit", "exited with status 127 (command not found)"}},
		{name: "unit not enabled", command: "systemctl is-enabled", answer: answer{Stdout: "disabled\n", ExitCode: 1},
			want: []string{"checking the unit is enabled", "disabled"}},
		{name: "odd mktemp", command: "mktemp", answer: answer{Stdout: "/var/tmp/x\n"},
			want: []string{`mktemp printed "/var/tmp/x\n"`}},
		{name: "communicator none, uname", command: "uname -m", answer: answer{},
			want: []string{"`uname -m` exited 0 but printed nothing", `communicator = "none"`}},
		{name: "communicator none, mktemp", command: "mktemp", answer: answer{},
			want: []string{"`mktemp -d` exited 0 but printed nothing", `communicator = "none"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			comm, _, err := provision(t, nil, imageReplies(func(cmd string) (answer, bool) {
				return tc.answer, strings.HasPrefix(cmd, tc.command)
			}))
			if err == nil {
				t.Fatalf("want an error, commands %q", comm.commands)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestProvisionWithoutCommunicator(t *testing.T) {
	p, err := newProvisioner(t, fakeAgents(t), map[string]interface{}{"kms_key_id": testKey})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Provision(context.Background(), packersdk.TestUi(t), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "needs a communicator") {
		t.Fatalf("want a communicator error, got %v", err)
	}
}

func TestSelfTestCommandsFollowConfig(t *testing.T) {
	comm, _, err := provision(t, map[string]interface{}{"filesystem": "xfs", "layout": "raid0", "wipe_foreign": true}, imageReplies(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := "sudo -n sh -c 'sh " + testStage + "/self-test.sh 2 5 systemctl mkfs.xfs mdadm wipefs'"
	if !slices.Contains(comm.commands, want) {
		t.Errorf("no %q in %q", want, comm.commands)
	}
}
