package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/freeport"
)

const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
)

// proc is one child process the driver owns: a server under test or Redis.
type proc struct {
	name   string
	cmd    *exec.Cmd
	addr   string // the address it serves on, once ready
	log    string // path of its captured output
	exited chan struct{}
}

// procs tracks every child so that all of them are stopped on exit.
type procs struct {
	mu  sync.Mutex
	all []*proc
	dir string
}

// start runs bin with args and env, capturing stdout and stderr to a log
// file in p.dir. ready reads the output line by line and returns the served
// address when it sees it; start waits for it at most readyTimeout.
func (ps *procs) start(ctx context.Context, name, bin string, args, env []string, ready func(line string) (string, bool)) (*proc, error) {
	logPath := filepath.Join(ps.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: create log: %w", name, err)
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = pw
	cmd.Stderr = pw
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: exec %s: %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(p.exited)
	}()

	addrc := make(chan string, 1)
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if !found {
				if a, ok := ready(line); ok {
					found = true
					addrc <- a
				}
			}
		}
		_, _ = io.Copy(logFile, pr) // a line too long for the scanner
	}()

	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case p.addr = <-addrc:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited during start-up; see %s", name, logPath)
	case <-timer.C:
		return nil, fmt.Errorf("%s not ready after %s; see %s", name, readyTimeout, logPath)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: start-up: %w", name, context.Cause(ctx))
	}
}

// stopAll sends SIGTERM to every child still running, waits a bound, then
// kills what is left. It is safe to call more than once.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := ps.all
	ps.all = nil
	ps.mu.Unlock()
	terminate(all)
}

// terminate sends SIGTERM to procs and kills those still running after
// stopTimeout.
func terminate(all []*proc) {
	for _, p := range all {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(stopTimeout)
	for _, p := range all {
		select {
		case <-p.exited:
		case <-deadline:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// stop stops the given children (SIGTERM, then SIGKILL after a bound) and
// forgets them.
func (ps *procs) stop(stop ...*proc) {
	ps.mu.Lock()
	ps.all = slices.DeleteFunc(ps.all, func(p *proc) bool { return slices.Contains(stop, p) })
	ps.mu.Unlock()
	terminate(stop)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

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
func (ps *procs) startRedis(ctx context.Context, bin string) (*proc, error) {
	var last error
	for range 5 {
		port, err := freeport.Loopback()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p, err := ps.start(ctx, "redis", bin, []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", ps.dir,
		}, []string{"PATH=" + os.Getenv("PATH")}, redisReady(addr))
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
