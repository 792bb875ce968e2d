// Command awsemu serves amicrypt's local AWS (EC2/EBS, KMS, STS) on one
// loopback endpoint, for the demo, the e2e tests and the benchmarks.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "awsemu:", err)
		os.Exit(1)
	}
}

// config is what the command line asks for.
type config struct {
	addr  string
	opts  awsemu.Options
	quiet bool
}

// parseFlags reads the command line into the emulator's options.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("awsemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:4566", "listen address (loopback only)")
	worldPath := fs.String("world", "", "world file (.json or .hcl); default: the embedded default world")
	timeScale := fs.Float64("time-scale", 1, "multiplier of every emulated duration (0.001: one emulated second per millisecond)")
	faultsPath := fs.String("faults", "", "fault profile (JSON)")
	statePath := fs.String("state", "", "state file: loaded at start, saved after changes and on shutdown")
	grantDelay := fs.Duration("grant-delay", 0, "emulated time a KMS grant takes to take effect (scaled by -time-scale)")
	callLatency := fs.Duration("call-latency", 0, "emulated time every API call takes before it is answered (scaled by -time-scale; 0: none)")
	imageCopies := fs.Int("image-copies", 0, "concurrent AMI copies per destination account-region (0: 50)")
	snapshotCopies := fs.Int("snapshot-copies", 0, "concurrent snapshot copies per destination account-region (0: 20)")
	describeRate := fs.Float64("describe-rate", 0, "Describe*/List*/Get* requests per second per account-region (0: unlimited)")
	describeBurst := fs.Int("describe-burst", 0, "burst of the describe bucket (0: the rate)")
	mutateRate := fs.Float64("mutate-rate", 0, "other requests per second per account-region (0: unlimited)")
	mutateBurst := fs.Int("mutate-burst", 0, "burst of the mutate bucket (0: the rate)")
	awsRates := fs.Bool("aws-rate-limits", false, "use EC2's default request-rate buckets (describe 100 burst, 20/s; mutate 200 burst, 5/s) instead of the -*-rate flags")
	emulatedRates := fs.Bool("emulated-time-rates", false, "request rates are per emulated second (rate / -time-scale per wall second), for benchmarks at a time scale")
	quiet := fs.Bool("quiet", false, "do not print the accounts and their keys")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if *timeScale <= 0 {
		return config{}, fmt.Errorf("-time-scale %v: must be positive, e.g. 1 (real time) or 0.01", *timeScale)
	}
	if *callLatency < 0 {
		return config{}, fmt.Errorf("-call-latency %v: must be 0 (none) or positive, e.g. 100ms", *callLatency)
	}
	opts := awsemu.Options{
		TimeScale:   *timeScale,
		GrantDelay:  *grantDelay,
		CallLatency: *callLatency,
		StatePath:   *statePath,
		Limits: awsemu.Limits{
			ConcurrentImageCopies: *imageCopies, ConcurrentSnapshotCopies: *snapshotCopies,
			DescribeRate: *describeRate, DescribeBurst: *describeBurst, MutateRate: *mutateRate, MutateBurst: *mutateBurst,
		},
		Logf: func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) },
	}
	if *awsRates {
		opts.Limits = opts.Limits.AWSRequestRates()
	}
	opts.Limits.EmulatedTime = *emulatedRates
	if *worldPath != "" {
		w, err := awsemu.LoadWorld(*worldPath)
		if err != nil {
			return config{}, err
		}
		opts.World = w
	}
	if *faultsPath != "" {
		p, err := awsemu.LoadFaultProfile(*faultsPath)
		if err != nil {
			return config{}, err
		}
		opts.Faults = p
	}
	return config{addr: *addr, opts: opts, quiet: *quiet}, nil
}

// run serves until ctx ends (SIGINT/SIGTERM), then shuts down gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	srv, err := awsemu.Listen(cfg.addr, cfg.opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "awsemu listening on %s\n", srv.URL())
	fmt.Fprintf(stdout, "  export AWS_ENDPOINT_URL=%s\n", srv.URL())
	if !cfg.quiet {
		printAccounts(stdout, srv.Emulator())
	}

	<-ctx.Done()
	fmt.Fprintln(stdout, "awsemu: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

func printAccounts(w io.Writer, emu *awsemu.Emulator) {
	world := emu.World()
	accounts := append([]awsemu.WorldAccount(nil), world.Accounts...)
	sort.Slice(accounts, func(i, j int) bool { return accounts[i].ID < accounts[j].ID })
	fmt.Fprintf(w, "  regions: %v (not enabled: %v)\n", world.Regions, world.Disabled)
	for _, a := range accounts {
		for _, u := range a.Users {
			fmt.Fprintf(w, "  account %s user %-8s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s\n", a.ID, u.Name, u.AccessKey, u.SecretKey)
		}
		if len(a.Users) == 0 && a.Alias != "" {
			fmt.Fprintf(w, "  account %s (%s) has no users\n", a.ID, a.Alias)
		}
	}
}
