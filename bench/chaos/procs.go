package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
)

// clock gives every event of the run a time relative to its start, on the
// monotonic clock, so that the oracle compares answers and directory changes
// on one time line.
type clock struct{ start time.Time }

func (c clock) now() time.Duration { return time.Since(c.start) }

// proc is one child process the driver owns: gatehouse or a redis-server.
type proc struct {
	name   string
	cmd    *exec.Cmd
	addr   string // what the ready function returned
	log    string // path of its captured output
	exited chan struct{}
	// exitErr is cmd.Wait's result, set before exited is closed.
	exitErr error
}

// procs tracks every child so that all of them are stopped on exit.
type procs struct {
	mu  sync.Mutex
	all []*proc
	dir string
}

// start runs bin with args and env, its output captured to a log file in
// ps.dir. ready sees each output line and returns a value (an address) when
// the child is ready; start waits for it at most readyTimeout. onLine, when
// set, also sees every line (from another goroutine).
func (ps *procs) start(ctx context.Context, name, bin string, args, env []string, ready func(line string) (string, bool), onLine func(line string)) (*proc, error) {
	logPath := filepath.Join(ps.dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
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
		p.exitErr = cmd.Wait()
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
			if onLine != nil {
				onLine(line)
			}
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
		ps.stop(p)
		return nil, fmt.Errorf("%s not ready after %s; see %s", name, readyTimeout, logPath)
	case <-ctx.Done():
		ps.stop(p)
		return nil, fmt.Errorf("%s: start-up: %w", name, context.Cause(ctx))
	}
}

// stopAll stops every child still running (SIGCONT for a paused one, SIGTERM,
// SIGKILL after stopTimeout). It is safe to call more than once.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := ps.all
	ps.all = nil
	ps.mu.Unlock()
	terminate(all)
}

// stop stops the given children and forgets them.
func (ps *procs) stop(stop ...*proc) {
	ps.forget(stop...)
	terminate(stop)
}

// forget removes children from the list stopAll works on (they exited).
func (ps *procs) forget(gone ...*proc) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	kept := ps.all[:0]
	for _, p := range ps.all {
		keep := true
		for _, g := range gone {
			if p == g {
				keep = false
			}
		}
		if keep {
			kept = append(kept, p)
		}
	}
	ps.all = kept
}

func terminate(all []*proc) {
	for _, p := range all {
		// A stopped (SIGSTOP) process cannot act on SIGTERM.
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
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

// kill ends p at once (SIGKILL) and waits for it, at most stopTimeout.
func (ps *procs) kill(p *proc) error {
	ps.forget(p)
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// signal sends sig to p.
func (p *proc) signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	return nil
}

// waitExit waits at most d for p to exit and returns its exit code.
func (p *proc) waitExit(d time.Duration) (int, error) {
	select {
	case <-p.exited:
	case <-time.After(d):
		return -1, fmt.Errorf("%s (pid %d) still running %s after the signal", p.name, p.cmd.Process.Pid, d)
	}
	var ee *exec.ExitError
	switch {
	case p.exitErr == nil:
		return 0, nil
	case errors.As(p.exitErr, &ee):
		return ee.ExitCode(), nil
	default:
		return -1, fmt.Errorf("%s: wait: %w", p.name, p.exitErr)
	}
}
