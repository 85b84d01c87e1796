//go:build !linux

package main

import "os/exec"

// setProcAttr does nothing outside Linux; the driver's own cleanup stops the
// children.
func setProcAttr(*exec.Cmd) {}
