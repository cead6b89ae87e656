package procs

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment of the fake component processes: the test binary re-run with
// these serves forever instead of running tests.
const (
	fakeListenEnv = "PROCS_FAKE_LISTEN" // comma list of ports or addr:port
	ignoreTermEnv = "PROCS_IGNORE_TERM" // 1: survive SIGTERM
)

func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(fakeListenEnv); ok {
		os.Exit(fakeServe(spec))
	}
	os.Exit(m.Run())
}

func fakeServe(spec string) int {
	if os.Getenv(ignoreTermEnv) == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	var keep []net.Listener
	for _, p := range strings.Split(spec, ",") {
		if p == "" {
			continue
		}
		if !strings.Contains(p, ":") {
			p = ":" + p
		}
		l, err := net.Listen("tcp", p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake listener:", err)
			return 2
		}
		keep = append(keep, l)
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
		// The listeners' finalizers would close them once unreachable.
		runtime.KeepAlive(keep)
	}
}

// fake is a started fake process; it is reaped by its own goroutine.
type fake struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (f *fake) reap() {
	select {
	case <-f.done:
	default:
		_ = f.cmd.Wait()
		close(f.done)
	}
}

func (f *fake) pid() int { return f.cmd.Process.Pid }

func (f *fake) alive() bool {
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// waitExit waits for the process to end and returns the signal that ended it.
func (f *fake) waitExit(t *testing.T, d time.Duration) syscall.Signal {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(d):
		t.Fatalf("%s (pid %d) still running after %v", f.cmd.Path, f.pid(), d)
	}
	ws := f.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

// startFake runs path (a copy of the test binary) listening on listen and
// waits until it is ready.
func startFake(t *testing.T, path string, args []string, listen string, ignoreTerm bool) *fake {
	t.Helper()
	return startProc(t, path, args, listen, ignoreTerm, true)
}

// startProc is startFake; with reap false nobody waits for the process, so
// once it ends it stays a zombie until done is closed by reap().
func startProc(t *testing.T, path string, args []string, listen string, ignoreTerm, reap bool) *fake {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), fakeListenEnv+"="+listen)
	if ignoreTerm {
		cmd.Env = append(cmd.Env, ignoreTermEnv+"=1")
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("unexpected output %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, out)
	}()
	f := &fake{cmd: cmd, done: make(chan struct{})}
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("%s did not start: %v", path, err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("%s not ready after 10s", path)
	}
	if reap {
		go f.reap()
	}
	t.Cleanup(func() {
		if !reap {
			_ = cmd.Process.Kill()
			f.reap()
			return
		}
		if f.alive() {
			_ = cmd.Process.Kill()
			<-f.done
		}
	})
	return f
}

// installBinary copies the test binary to path.
func installBinary(t *testing.T, path string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	// Closed before any exec, or the exec fails with ETXTBSY.
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
