//go:build !linux

package proxytest

import "os/exec"

func setProcAttr(*exec.Cmd) {}
