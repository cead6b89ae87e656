// Package testns runs a test body inside Linux namespaces that the test
// creates, so that tests which change mounts, processes or links never touch
// the machine they run on.
//
// The calling test re-executes the test binary for itself alone with new
// namespaces; the child makes every mount private before the body runs.
package testns

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireEnv, when set to 1, turns a missing prerequisite (not root, a
// missing command) into a test failure instead of a skip. `make test` sets it.
const RequireEnv = "NODERESET_REQUIRE_PRIVILEGED"

const childEnv = "NODERESET_TESTNS_CHILD"

// Prereq skips the test, or fails it under RequireEnv=1, when cond is false.
func Prereq(t testing.TB, cond bool, format string, args ...any) {
	t.Helper()
	if cond {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("prerequisite missing (%s=1): %s", RequireEnv, msg)
	}
	t.Skipf("prerequisite missing: %s (set %s=1 to fail instead)", msg, RequireEnv)
}

// Root checks that the test runs as root.
func Root(t testing.TB) { t.Helper(); Prereq(t, os.Geteuid() == 0, "needs root") }

// Command checks that a command is on PATH.
func Command(t testing.TB, name string) {
	t.Helper()
	_, err := exec.LookPath(name)
	Prereq(t, err == nil, "needs %s on PATH", name)
}

// Mount, PID and Net are the namespaces a test can ask for.
const (
	Mount = unix.CLONE_NEWNS
	PID   = unix.CLONE_NEWPID
	Net   = unix.CLONE_NEWNET
)

// Enter re-runs the current top-level test in new namespaces (flags from
// Mount|PID|Net; Mount is always added). It returns true in the child, where
// the test body must run, and false in the parent once the child finished;
// the parent fails if the child failed. Inside, every mount is private and,
// with PID, /proc shows only the new PID namespace.
//
//	if !testns.Enter(t, testns.Mount|testns.PID) { return }
func Enter(t *testing.T, flags uintptr) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		if err := setupChild(flags); err != nil {
			t.Fatalf("namespace setup: %v", err)
		}
		return true
	}
	Root(t)
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("testns.Enter must be called from a top-level test, not %s", t.Name())
	}
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: flags | Mount,
		Pdeathsig:  syscall.SIGKILL,
	}
	out, err := cmd.CombinedOutput()
	t.Logf("in namespaces:\n%s", out)
	if err != nil {
		t.Fatalf("test body in namespaces failed: %v", err)
	}
	if strings.Contains(string(out), "--- SKIP") && !strings.Contains(string(out), "--- PASS") {
		t.Skip("skipped inside the namespaces")
	}
	return false
}

func setupChild(flags uintptr) error {
	// Private first: on a host whose / is shared, mounts made here would
	// otherwise propagate back out.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if flags&PID != 0 {
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount /proc: %w", err)
		}
	}
	return nil
}
