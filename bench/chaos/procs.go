package main

import (
	"os/exec"
	"time"
)

// readyTimeout bounds a child's start-up.
const readyTimeout = 15 * time.Second

// command builds the command for a child with exactly env as its environment.
func command(bin string, args, env []string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	return cmd
}

// clock gives every event of the run a time relative to its start, on the
// monotonic clock, so that the oracle compares answers and directory changes
// on one time line.
type clock struct{ start time.Time }

func (c clock) now() time.Duration { return time.Since(c.start) }
