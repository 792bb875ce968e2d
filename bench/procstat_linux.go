package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The benchmarks measure processes they did not start themselves (Packer
// starts the plugin), so they read /proc: no library reads another
// process's peak RSS and CPU time by predicate, hence this small sampler.

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100 on
// every Linux architecture Go supports (the kernel ABI fixes it).
const userHZ = 100

// ProcUsage is what a process used, as last sampled.
type ProcUsage struct {
	PID     int
	Args    []string
	PeakRSS int64         // bytes: VmHWM, the kernel's high-water mark
	CPU     time.Duration // user + system
	Samples int
}

// ProcMatch picks the processes to watch, by executable path and arguments.
type ProcMatch func(pid int, exe string, args []string) bool

// ProcWatcher samples the matching processes until Stop. VmHWM is exact
// whenever a sample is taken after the peak; the CPU time of a process
// that exits misses at most its last interval.
type ProcWatcher struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	usage  map[int]*ProcUsage
}

// WatchProcs starts sampling every interval.
func WatchProcs(interval time.Duration, match ProcMatch) *ProcWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &ProcWatcher{cancel: cancel, done: make(chan struct{}), usage: map[int]*ProcUsage{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			w.sample(match)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Stop takes a last sample and returns what every matching process used.
func (w *ProcWatcher) Stop(match ProcMatch) []ProcUsage {
	w.cancel()
	<-w.done
	w.sample(match)
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]ProcUsage, 0, len(w.usage))
	for _, u := range w.usage {
		out = append(out, *u)
	}
	return out
}

func (w *ProcWatcher) sample(match ProcMatch) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		w.mu.Lock()
		known := w.usage[pid]
		w.mu.Unlock()
		if known == nil {
			exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
			if err != nil {
				continue // gone, or not ours to read
			}
			args := procArgs(pid)
			if !match(pid, exe, args) {
				continue
			}
			known = &ProcUsage{PID: pid, Args: args}
		}
		rss, cpu, err := ReadProc(pid)
		if err != nil {
			continue // exited between two reads
		}
		w.mu.Lock()
		known.PeakRSS = max(known.PeakRSS, rss)
		known.CPU = max(known.CPU, cpu)
		known.Samples++
		w.usage[pid] = known
		w.mu.Unlock()
	}
}

func procArgs(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

// ReadProc returns a process's peak RSS (VmHWM) and CPU time so far.
func ReadProc(pid int) (peakRSS int64, cpu time.Duration, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/%d/status VmHWM %q: %w", pid, rest, err)
			}
			peakRSS = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(stat[end+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, fields[11], fields[12])
	}
	return peakRSS, time.Duration(utime+stime) * time.Second / userHZ, nil
}

// ParentPID is a process's parent, 0 when it can't be read.
func ParentPID(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0
	}
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}
