package bench

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestReadProcSelf touches 64 MiB and sees the peak RSS grow by as much;
// the CPU time stays within getrusage's.
func TestReadProcSelf(t *testing.T) {
	before, _, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after, cpu, err := ReadProc(os.Getpid())
	runtime.KeepAlive(buf)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 60<<20 {
		t.Errorf("VmHWM grew by %d bytes after touching 64 MiB", after-before)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	if ruCPU := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()); cpu <= 0 || cpu > ruCPU+20*time.Millisecond {
		t.Errorf("/proc CPU %s, getrusage %s", cpu, ruCPU)
	}
	if got := ParentPID(os.Getpid()); got != os.Getppid() {
		t.Errorf("ParentPID = %d, want %d", got, os.Getppid())
	}
}

// TestWatchProcs watches a shell that burns CPU, picked by its arguments,
// and leaves this process alone.
func TestWatchProcs(t *testing.T) {
	marker := "amicrypt-bench-watch-test"
	match := func(pid int, exe string, args []string) bool { return slices.Contains(args, marker) }
	w := WatchProcs(20*time.Millisecond, match)
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`, marker)
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	usage := w.Stop(match)
	if len(usage) != 1 {
		t.Fatalf("watched %d processes, want the one shell: %+v", len(usage), usage)
	}
	u := usage[0]
	if u.PID != cmd.Process.Pid {
		t.Errorf("watched PID %d, want %d", u.PID, cmd.Process.Pid)
	}
	if u.PeakRSS <= 0 || u.Samples == 0 {
		t.Errorf("no usage sampled: %+v", u)
	}
	if u.CPU <= 0 || u.CPU > wall+10*time.Millisecond {
		t.Errorf("CPU %s for a shell that ran %s", u.CPU, wall)
	}
}
