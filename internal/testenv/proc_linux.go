package testenv

import "syscall"

// sysProcAttr puts the process in its own group and has the kernel kill it
// if the test process dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
