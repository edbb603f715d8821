//go:build !linux

package testenv

import "syscall"

// sysProcAttr puts the process in its own group.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
