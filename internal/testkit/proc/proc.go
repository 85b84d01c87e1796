// Package proc is the one child-process launcher of gatehouse's tests,
// benchmarks and chaos runs: it starts a binary with its output captured to a
// log file, waits until the child is ready (a line it prints, or a check the
// caller polls), and stops it (SIGCONT, SIGTERM, SIGKILL after a bound).
//
// On Linux every child gets Pdeathsig (SIGKILL): the kernel kills it when
// the process that started it dies without running its cleanups (a panic, a
// test timeout, SIGKILL), so no server outlives its test or driver.
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrExited is wrapped by the errors of Poll and WaitReady when the child
// exited before it was ready.
var ErrExited = errors.New("exited during start-up")

// logTail bounds the log excerpt put into error messages.
const logTail = 4000

// Spec is what to run.
type Spec struct {
	// Name names the child in errors ("redis-server", "gatehouse-1").
	Name string
	// Cmd is the command, built by the caller (path, arguments, Env, Dir, and
	// SysProcAttr when it needs more, such as a Credential). Start sets its
	// Stdout and Stderr, and Pdeathsig on Linux.
	Cmd *exec.Cmd
	// Log is the file that captures the child's stdout and stderr; it is
	// created if needed and appended to.
	Log string
	// Ready, when set, sees each output line and returns a value (usually
	// the address the child serves on) once the line says the child is
	// ready; WaitReady returns it. The output then goes through a pipe that
	// the launcher copies to Log line by line.
	Ready func(line string) (string, bool)
	// OnLine, when set, also sees every output line (from another goroutine).
	OnLine func(line string)
}

// Process is a started child.
type Process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	// exitErr is cmd.Wait's result, set before exited is closed.
	exitErr error
	// ready receives Spec.Ready's value once; nil without Spec.Ready.
	ready chan string
	// addr is what WaitReady returned.
	addr string
}

// Start starts the child described by s and returns at once; see WaitReady
// and Poll to wait until it serves.
func Start(s Spec) (*Process, error) {
	logFile, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: create log: %w", s.Name, err)
	}
	cmd := s.Cmd
	p := &Process{name: s.Name, cmd: cmd, log: s.Log, exited: make(chan struct{})}
	lines := s.Ready != nil || s.OnLine != nil
	var pr *io.PipeReader
	var pw *io.PipeWriter
	if lines {
		pr, pw = io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
	} else {
		cmd.Stdout, cmd.Stderr = logFile, logFile
	}
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: exec %s: %w", s.Name, cmd.Path, err)
	}
	go func() {
		p.exitErr = cmd.Wait()
		if pw != nil {
			pw.Close()
		}
		close(p.exited)
	}()
	if !lines {
		logFile.Close() // the child has its own descriptor
		return p, nil
	}
	p.ready = make(chan string, 1)
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := s.Ready == nil
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if s.OnLine != nil {
				s.OnLine(line)
			}
			if !found {
				if a, ok := s.Ready(line); ok {
					found = true
					p.ready <- a
				}
			}
		}
		_, _ = io.Copy(logFile, pr) // a line too long for the scanner
	}()
	return p, nil
}

// Name returns the child's name.
func (p *Process) Name() string { return p.name }

// Pid returns the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Addr returns what WaitReady returned.
func (p *Process) Addr() string { return p.addr }

// LogPath returns the path of the child's log file.
func (p *Process) LogPath() string { return p.log }

// Log returns the end of the child's log, for error messages.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > logTail {
		b = b[len(b)-logTail:]
	}
	return strings.TrimSpace(string(b))
}

// Exited is closed once the child has exited and been waited for.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// WaitReady waits until Spec.Ready has matched a line and returns its value,
// at most timeout. It fails when the child exits first (the error wraps
// ErrExited) and when ctx ends.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration) (string, error) {
	if p.ready == nil {
		return "", fmt.Errorf("%s: WaitReady without Spec.Ready", p.name)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case p.addr = <-p.ready:
		return p.addr, nil
	case <-p.exited:
		return "", fmt.Errorf("%s %w; see %s", p.name, ErrExited, p.log)
	case <-timer.C:
		return "", fmt.Errorf("%s not ready after %s; see %s", p.name, timeout, p.log)
	case <-ctx.Done():
		return "", fmt.Errorf("%s: start-up: %w", p.name, context.Cause(ctx))
	}
}

// Poll calls check every interval until it returns nil, at most timeout. It
// fails when the child exits first (the error wraps ErrExited and holds the
// end of the log) or on timeout (with check's last error and the log).
func (p *Process) Poll(timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s (pid %d) %w: %s", p.name, p.Pid(), ErrExited, p.Log())
		default:
		}
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) not ready after %v: %w; log: %s", p.name, p.Pid(), timeout, err, p.Log())
		}
		time.Sleep(interval)
	}
}

// Signal sends sig to the child.
func (p *Process) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	return nil
}

// WaitExit waits at most d for the child to exit and returns its exit code.
func (p *Process) WaitExit(d time.Duration) (int, error) {
	select {
	case <-p.exited:
	case <-time.After(d):
		return -1, fmt.Errorf("%s (pid %d) still running after %s", p.name, p.Pid(), d)
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

// Stop asks the child to end with sig (SIGTERM for most servers; SIGCONT
// first, as a stopped process cannot act on it), waits at most timeout, then
// kills it. It returns an error only when the child survives SIGKILL for
// another timeout.
func (p *Process) Stop(sig os.Signal, timeout time.Duration) error {
	return stopAll([]*Process{p}, sig, timeout)
}

// Kill ends the child at once (SIGKILL) and waits for it, at most timeout.
func (p *Process) Kill(timeout time.Duration) error {
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.Pid())
	}
}

// stopAll sends SIGCONT and sig to every child, waits for them together at
// most timeout, then kills those left.
func stopAll(all []*Process, sig os.Signal, timeout time.Duration) error {
	for _, p := range all {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Signal(sig)
	}
	deadline := time.After(timeout)
	var errs []error
	for _, p := range all {
		select {
		case <-p.exited:
		case <-deadline:
			errs = append(errs, p.Kill(timeout))
		}
	}
	return errors.Join(errs...)
}

// Group tracks the children of a driver so that every one is stopped on
// exit. It is safe for concurrent use.
type Group struct {
	// Dir holds the children's log files (Name + ".log").
	Dir string

	mu  sync.Mutex
	all []*Process
}

// Start starts a child named name running cmd, logging to Dir/name.log,
// and waits at most readyTimeout for ready to match a line of its output.
// onLine may be nil. A child that does not become ready is stopped.
func (g *Group) Start(ctx context.Context, name string, cmd *exec.Cmd, readyTimeout time.Duration, ready func(line string) (string, bool), onLine func(line string)) (*Process, error) {
	p, err := Start(Spec{Name: name, Cmd: cmd, Log: filepath.Join(g.Dir, name+".log"), Ready: ready, OnLine: onLine})
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.all = append(g.all, p)
	g.mu.Unlock()
	if _, err := p.WaitReady(ctx, readyTimeout); err != nil {
		g.Stop(p)
		return nil, err
	}
	return p, nil
}

// stopTimeout bounds how long Group waits for a child after SIGTERM, and
// again after SIGKILL.
const stopTimeout = 5 * time.Second

// StopAll stops every child still tracked (SIGCONT, SIGTERM, SIGKILL after a
// bound). It is safe to call more than once.
func (g *Group) StopAll() {
	g.mu.Lock()
	all := g.all
	g.all = nil
	g.mu.Unlock()
	_ = stopAll(all, syscall.SIGTERM, stopTimeout)
}

// Stop stops the given children together and forgets them.
func (g *Group) Stop(ps ...*Process) {
	g.Forget(ps...)
	_ = stopAll(ps, syscall.SIGTERM, stopTimeout)
}

// Kill ends p at once (SIGKILL), forgets it and waits for it.
func (g *Group) Kill(p *Process) error {
	g.Forget(p)
	return p.Kill(stopTimeout)
}

// Forget removes children from the group (they exited, or the caller stops
// them itself).
func (g *Group) Forget(gone ...*Process) {
	g.mu.Lock()
	defer g.mu.Unlock()
	kept := g.all[:0]
	for _, p := range g.all {
		keep := true
		for _, q := range gone {
			if p == q {
				keep = false
			}
		}
		if keep {
			kept = append(kept, p)
		}
	}
	clear(g.all[len(kept):])
	g.all = kept
}
