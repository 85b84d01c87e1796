package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proc"
)

// readyTimeout bounds a child's start-up.
const readyTimeout = 15 * time.Second

// command builds the command for a child with exactly env as its environment.
func command(bin string, args, env []string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	return cmd
}

// jsonListening recognises gatehouse's start-up log line
// {"msg":"listening","grpc":"127.0.0.1:PORT",...}.
func jsonListening(line string) (string, bool) {
	var rec struct {
		Msg  string `json:"msg"`
		GRPC string `json:"grpc"`
	}
	if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "listening" || rec.GRPC == "" {
		return "", false
	}
	return rec.GRPC, true
}

// textListening recognises the noop server's "listening ADDR" line.
func textListening(line string) (string, bool) {
	a, ok := strings.CutPrefix(line, "listening ")
	return strings.TrimSpace(a), ok
}

// redisReady recognises redis-server's "Ready to accept connections".
func redisReady(addr string) func(string) (string, bool) {
	return func(line string) (string, bool) {
		return addr, strings.Contains(line, "Ready to accept connections")
	}
}

// startRedis launches a private redis-server on a random loopback port, no
// persistence.
func startRedis(ctx context.Context, ps *proc.Group, bin string) (*proc.Process, error) {
	var last error
	for range 5 {
		port, err := testkit.FreePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p, err := ps.Start(ctx, "redis", command(bin, []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", ps.Dir,
		}, []string{"PATH=" + os.Getenv("PATH")}), readyTimeout, redisReady(addr), nil)
		if err == nil {
			return p, nil
		}
		last = err
	}
	return nil, last
}

// --- /proc readers -----------------------------------------------------

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime returns utime+stime of pid (0 for the driver itself: "self").
func cpuTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	// Fields after the parenthesised command name, which may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("parse %s: no command name", path)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse %s: %d fields", path, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// statusKiB returns a "Vm..." field of /proc/<pid>/status in KiB.
func statusKiB(pid int, field string) (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("parse %s: no %s", path, field)
}

// resetPeakRSS resets VmHWM to the current RSS (Linux >= 4.0), so that the
// peak read after a run is that run's. It reports false when the kernel
// refuses; the peak is then the peak since start.
func resetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// systemBusy returns the busy (non-idle, non-iowait) time of all CPUs from
// /proc/stat, to tell how much of the machine other processes used.
func systemBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("parse /proc/stat: no cpu line")
	}
	var busy int64
	for i, s := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 7 { // guest times are already counted in user
			break
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		busy += v
	}
	return time.Duration(busy) * clockTick, nil
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuTimes sums cpuTime over pids.
func cpuTimes(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		t, err := cpuTime(pid)
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}
