package sandbox

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// RunFake is the whole life of a fake component (nodesim started with
// NODESIM_ROLE set): listen on the NODESIM_LISTEN ports, tell the sandbox
// init it is ready, then block until SIGTERM — or forever with
// NODESIM_IGNORE_TERM=1, which sets SIGTERM to ignored in the kernel, as a
// stuck etcd would. It returns the exit code.
func RunFake() int {
	term := make(chan os.Signal, 1)
	if os.Getenv(EnvIgnoreTerm) == "1" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	}
	for _, p := range strings.Split(os.Getenv(EnvListen), ",") {
		if p == "" {
			continue
		}
		ln, err := net.Listen("tcp", "0.0.0.0:"+p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", os.Getenv(EnvRole), err)
			return 1
		}
		go accept(ln)
	}
	if os.Getenv(envReadyFD) == "3" {
		ready := os.NewFile(3, "ready")
		_, _ = ready.Write([]byte{1})
		ready.Close()
	}
	<-term
	return 0
}

// accept answers connections by closing them: a successful connect is all
// a port check needs.
func accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
