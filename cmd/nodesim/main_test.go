package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/internal/testns"
)

// TestCLI drives the real binary through up, exec, check, snapshot, down.
func TestCLI(t *testing.T) {
	testns.Root(t)
	testns.Command(t, "nsenter")
	dir := t.TempDir()
	bin := filepath.Join(dir, "nodesim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	state, root := filepath.Join(dir, "state"), filepath.Join(dir, "root")
	nodesim := func(args ...string) (string, int) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		}
		t.Fatalf("nodesim %v: %v", args, err)
		return "", -1
	}
	if out, rc := nodesim("up", "--root", root, "--state", state, "--pods", "2", "--volumes", "3"); rc != 0 {
		t.Fatalf("up: rc %d\n%s", rc, out)
	}
	t.Cleanup(func() { nodesim("down", "--state", state) })
	m, err := sandbox.ReadManifest(state)
	if err != nil {
		t.Fatal(err)
	}
	if pid, _ := os.ReadFile(filepath.Join(state, sandbox.InitPIDFile)); strings.TrimSpace(string(pid)) == "" {
		t.Error("no init.pid")
	}

	if out, rc := nodesim("exec", "--state", state, "--", "/bin/sh", "-c", "cat "+root+"/etc/hostname; exit 3"); rc != 3 || out != "sandbox-node\n" {
		t.Errorf("exec: rc %d, %q; want 3, sandbox-node", rc, out)
	}
	if out, rc := nodesim("check", "--state", state); rc != 0 {
		t.Errorf("check on a fresh node: rc %d\n%s", rc, out)
	}
	snap, rc := nodesim("snapshot", "--state", state)
	if rc != 0 || !strings.Contains(snap, "\nmount /mnt/data tmpfs ") {
		t.Errorf("snapshot: rc %d\n%s", rc, snap)
	}
	nodesim("exec", "--state", state, "--", "/bin/rm", "-r", root+"/srv/userdata")
	if out, rc := nodesim("check", "--state", state); rc != 1 || !strings.Contains(out, "file /srv/userdata/db.sqlite: missing") {
		t.Errorf("check after damage: rc %d\n%s", rc, out)
	}

	if out, rc := nodesim("down", "--state", state); rc != 0 {
		t.Fatalf("down: rc %d\n%s", rc, out)
	}
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(m.InitPID) + "/status"); err == nil && !strings.Contains(string(st), "State:\tZ") {
		t.Errorf("init %d still running after down", m.InitPID)
	}
	if _, rc := nodesim("check", "--state", state); rc == 0 {
		t.Error("check succeeded after down")
	}
}
