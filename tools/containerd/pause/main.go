// Command pause is the sandbox process of every pod on the test node: it holds the pod's
// namespaces, reaps orphans and exits on SIGINT or SIGTERM, like Kubernetes' own pause (which is C,
// and no registry image can be pulled here).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString("pause: warning: not PID 1\n")
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for received := range signals {
		if received != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every exited child (orphans re-parented to PID 1 in a shared PID namespace).
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
