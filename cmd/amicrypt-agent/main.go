// Command amicrypt-agent encrypts an EC2 instance's instance-store disks at
// boot with LUKS2 under a KMS-wrapped key kept in each disk's header, and
// reopens them after a reboot. A systemd oneshot unit runs `amicrypt-agent
// up` at every boot; the amicrypt-instance-store provisioner installs it.
//
// Usage:
//
//	amicrypt-agent [-config FILE] up
//	amicrypt-agent [-config FILE] status [-json]
//	amicrypt-agent [-config FILE] verify [-device DEV]
//	amicrypt-agent [-config FILE] rewrap -to KEY [-device DEV]
//	amicrypt-agent [-config FILE] rotate [-device DEV]
//	amicrypt-agent version
//
// Exit status: 0 success, 1 failure (nothing was mounted for a failed
// volume), 2 usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
)

// Version is set at build time (-ldflags "-X main.Version=…").
var Version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, paths: agent.DefaultPaths(), runner: command.Exec{}}))
}

// env is what a run uses of the machine; tests give their own.
type env struct {
	stdout, stderr io.Writer
	paths          agent.Paths
	runner         command.Runner
	retry          agent.RetryOptions
}

const usage = `usage: amicrypt-agent [-config FILE] COMMAND [flags]

Commands:
  up        encrypt blank instance-store disks, reopen the agent's own, mount them
  status    show each disk: what it holds, its KMS key and context, open, mounted (-json)
  verify    unwrap each volume's key through KMS and check it against the LUKS2 header
  rewrap    re-encrypt each volume's wrapped key under another KMS key (-to KEY)
  rotate    give each volume a new passphrase from a new KMS data key
  version   print the version

The config file (default %s) is JSON:
  kms_key_id (required), devices, layout (single|each|raid0), mount_point,
  filesystem (ext4|xfs), encryption_context, kms_timeout ("60s"),
  wipe_foreign, name.
`

func run(ctx context.Context, args []string, e env) int {
	global := flag.NewFlagSet("amicrypt-agent", flag.ContinueOnError)
	global.SetOutput(e.stderr)
	global.Usage = func() { fmt.Fprintf(e.stderr, usage, agent.DefaultConfigPath) }
	configPath := global.String("config", agent.DefaultConfigPath, "the agent's config `file`")
	if err := global.Parse(args); err != nil {
		return 2
	}
	if global.NArg() == 0 {
		global.Usage()
		return 2
	}
	cmd, rest := global.Arg(0), global.Args()[1:]

	fs := flag.NewFlagSet("amicrypt-agent "+cmd, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(configPath, "config", *configPath, "the agent's config `file`")
	asJSON := fs.Bool("json", false, "status: print JSON")
	device := fs.String("device", "", "verify, rewrap, rotate: only the volume on this `device` (a disk, a raid0 member or the array)")
	toKey := fs.String("to", "", "rewrap: the KMS `key` to wrap under (key ID, key ARN, alias name or alias ARN)")
	switch cmd {
	case "up", "status", "verify", "rewrap", "rotate":
	case "version":
		fmt.Fprintln(e.stdout, "amicrypt-agent", Version)
		return 0
	case "help", "-h", "--help":
		global.Usage()
		return 0
	default:
		fmt.Fprintf(e.stderr, "amicrypt-agent: unknown command %q\n", cmd)
		global.Usage()
		return 2
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "amicrypt-agent %s: unexpected arguments %v\n", cmd, fs.Args())
		return 2
	}
	if cmd == "rewrap" && *toKey == "" {
		fmt.Fprintln(e.stderr, "amicrypt-agent rewrap: -to KEY is required (the KMS key to wrap the volumes' keys under)")
		return 2
	}

	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	fail := func(err error) int {
		log.Error("amicrypt-agent "+cmd+" failed", "error", summary(err))
		return 1
	}
	cfg, err := agent.LoadConfig(*configPath)
	if err != nil {
		return fail(err)
	}
	opts := agent.Options{Config: cfg, Runner: e.runner, Paths: e.paths, Log: log}
	if cmd == "status" {
		rep, err := agent.New(opts).Status(ctx)
		if err != nil {
			return fail(err)
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return fail(err)
			}
			return 0
		}
		if err := rep.WriteText(e.stdout); err != nil {
			return fail(err)
		}
		return 0
	}

	awsCfg, id, err := agent.LoadAWS(ctx, time.Duration(cfg.KMSTimeout), e.retry)
	if err != nil {
		return fail(err)
	}
	opts.Identity, opts.KMS = id, kms.NewFromConfig(awsCfg)
	a := agent.New(opts)
	switch cmd {
	case "up":
		err = a.Up(ctx)
	case "verify":
		err = a.Verify(ctx, *device)
	case "rewrap":
		err = a.Rewrap(ctx, *toKey, *device)
	case "rotate":
		err = a.Rotate(ctx, *device)
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// summary keeps the final log line short when every failure is a volume's,
// already logged on its own line.
func summary(err error) string {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var devices []string
	for _, e := range errs {
		var ve *agent.VolumeError
		if !errors.As(e, &ve) {
			return err.Error()
		}
		devices = append(devices, ve.Device)
	}
	return fmt.Sprintf("%d volume(s) failed (%v); their lines above say why", len(devices), devices)
}
