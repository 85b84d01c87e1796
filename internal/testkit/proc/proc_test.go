package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the child: with PROC_TEST_CHILD set, TestMain
// plays the part it names instead of running the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("PROC_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "serve": // prints a ready line, then waits for SIGTERM and exits 3
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("starting")
		fmt.Println("listening 127.0.0.1:4321")
		<-sig
		fmt.Println("bye")
		os.Exit(3)
	case "stubborn": // ignores SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("listening 127.0.0.1:1")
		time.Sleep(time.Minute)
	case "crash":
		fmt.Fprintln(os.Stderr, "cannot bind: address already in use")
		os.Exit(1)
	case "touch": // creates a file after a moment, then lingers
		time.Sleep(100 * time.Millisecond)
		_ = os.WriteFile(os.Getenv("PROC_TEST_FILE"), nil, 0o600)
		time.Sleep(time.Minute)
	}
	os.Exit(2)
}

func child(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"PROC_TEST_CHILD=" + mode}, env...)...)
	return cmd
}

func listening(line string) (string, bool) {
	a, ok := strings.CutPrefix(line, "listening ")
	return a, ok
}

func TestGroupStartWaitsForTheReadyLineAndStops(t *testing.T) {
	g := &Group{Dir: t.TempDir()}
	t.Cleanup(g.StopAll)
	var mu sync.Mutex
	var seen []string
	onLine := func(l string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, l)
	}
	p, err := g.Start(context.Background(), "serve", child(t, "serve"), 10*time.Second, listening, onLine)
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr() != "127.0.0.1:4321" {
		t.Fatalf("Addr = %q", p.Addr())
	}
	g.Stop(p)
	code, err := p.WaitExit(time.Second)
	if err != nil || code != 3 {
		t.Fatalf("exit code %d, %v; want 3 (the child's SIGTERM path)", code, err)
	}
	// OnLine saw the line before the ready line before Start returned.
	mu.Lock()
	if len(seen) == 0 || seen[0] != "starting" {
		t.Errorf("OnLine saw %q", seen)
	}
	mu.Unlock()
	// The log is complete once the copier has drained the pipe.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Log(), "bye") {
		if time.Now().After(deadline) {
			t.Fatalf("log %s lacks the last line: %q", p.LogPath(), p.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if filepath.Dir(p.LogPath()) != g.Dir {
		t.Fatalf("log %s not in %s", p.LogPath(), g.Dir)
	}
}

func TestWaitReadyReportsAnEarlyExit(t *testing.T) {
	g := &Group{Dir: t.TempDir()}
	t.Cleanup(g.StopAll)
	_, err := g.Start(context.Background(), "crash", child(t, "crash"), 10*time.Second, listening, nil)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("err = %v, want ErrExited", err)
	}
}

func TestStopKillsAChildThatIgnoresSIGTERM(t *testing.T) {
	p, err := Start(Spec{Name: "stubborn", Cmd: child(t, "stubborn"), Log: filepath.Join(t.TempDir(), "log"), Ready: listening})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitReady(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(syscall.SIGTERM, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned with the child still running")
	}
	if code, _ := p.WaitExit(0); code != -1 {
		t.Fatalf("exit code %d, want -1 (killed by a signal)", code)
	}
}

func TestPollWaitsForTheCheckAndSeesAnExit(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "flag")
	p, err := Start(Spec{Name: "touch", Cmd: child(t, "touch", "PROC_TEST_FILE="+flag), Log: filepath.Join(dir, "touch.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill(5 * time.Second) })
	if err := p.Poll(10*time.Second, 10*time.Millisecond, func() error {
		_, err := os.Stat(flag)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	crash, err := Start(Spec{Name: "crash", Cmd: child(t, "crash"), Log: filepath.Join(dir, "crash.log")})
	if err != nil {
		t.Fatal(err)
	}
	err = crash.Poll(10*time.Second, 10*time.Millisecond, func() error { return errors.New("never ready") })
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v, want ErrExited with the log's last line", err)
	}
}
