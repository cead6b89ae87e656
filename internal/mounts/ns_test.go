package mounts

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// These tests run only inside namespaces testns creates: every mount below
// is made in a private mount namespace over a tmpfs on t.TempDir(), and the
// only process signalled is the sleep the test starts.

func mnt(t *testing.T, src, target, fstype string, flags uintptr) {
	t.Helper()
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, target, fstype, flags, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", fstype, target, err)
	}
}

// sandbox mounts a tmpfs on a fresh temporary directory and returns it.
func sandbox(t *testing.T) string {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mnt(t, "tmpfs", base, "tmpfs", 0)
	// Runs before TempDir's removal, which then sees an empty directory.
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	return base
}

// mountCount counts current mounts at point.
func mountCount(t *testing.T, point string) int {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if m.Point == point {
			n++
		}
	}
	return n
}

// startHolder starts `sleep 60` with its working directory in dir.
func startHolder(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func applyAll(t *testing.T, k *Kind, env *engine.Env, items []plan.Item) *recorder {
	t.Helper()
	rec := newRecorder(t)
	k.Apply(context.Background(), env, items, rec)
	rec.check(items)
	return rec
}

func TestUnmountNamespaces(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.PID) {
		return
	}
	testns.Command(t, "sleep")
	base := sandbox(t)
	root := filepath.Join(base, "host")
	// The kubelet root is a link to a data disk, as on many hosts.
	kubelet := filepath.Join(root, "data/kubelet")
	if err := os.MkdirAll(filepath.Join(root, "var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/data/kubelet", filepath.Join(root, "var/lib/kubelet")); err != nil {
		t.Fatal(err)
	}
	mnt(t, "tmpfs", kubelet, "tmpfs", 0) // the root itself: never selected
	mnt(t, "tmpfs", filepath.Join(root, "var/lib/kubelet-old"), "tmpfs", 0)
	mnt(t, "tmpfs", filepath.Join(root, "data/kubelet-old/pods/x"), "tmpfs", 0)
	v1 := filepath.Join(kubelet, "pods/a/volumes/v1")
	mnt(t, "tmpfs", v1, "tmpfs", 0)
	mnt(t, "tmpfs", filepath.Join(v1, "sub"), "tmpfs", 0)
	stacked := filepath.Join(kubelet, "pods/b/vol")
	mnt(t, "tmpfs", stacked, "tmpfs", 0)
	mnt(t, "tmpfs", stacked, "tmpfs", 0)
	// A PV: user data bound in from outside the root.
	user := filepath.Join(base, "userdata")
	if err := os.MkdirAll(user, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(user, "data.txt"), []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	pv := filepath.Join(kubelet, "pods/c/volumes/pv")
	mnt(t, user, pv, "", unix.MS_BIND)
	outer := filepath.Join(kubelet, "pods/d/volumes/outer")
	busy := filepath.Join(outer, "busy")
	mnt(t, "tmpfs", outer, "tmpfs", 0)
	mnt(t, "tmpfs", busy, "tmpfs", 0)
	holder := startHolder(t, busy)

	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	env := &engine.Env{Host: h}
	k := New(Options{Roots: []string{"/var/lib/kubelet"}})
	items, err := k.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, it := range items {
		targets = append(targets, it.Target)
	}
	slices.Sort(targets)
	want := []string{
		"/data/kubelet/pods/a/volumes/v1",
		"/data/kubelet/pods/a/volumes/v1/sub",
		"/data/kubelet/pods/b/vol",
		"/data/kubelet/pods/b/vol",
		"/data/kubelet/pods/c/volumes/pv",
		"/data/kubelet/pods/d/volumes/outer",
		"/data/kubelet/pods/d/volumes/outer/busy",
	}
	if !reflect.DeepEqual(targets, want) {
		t.Fatalf("discovered\n%q\nwant\n%q", targets, want)
	}

	rec := applyAll(t, k, env, items)
	t.Logf("first run: %v", rec.done)
	busyErr := rec.err("/data/kubelet/pods/d/volumes/outer/busy")
	pid := strconv.Itoa(holder.Process.Pid)
	if !errors.Is(busyErr, unix.EBUSY) || !strings.Contains(busyErr.Error(), "held by pid "+pid+" (sleep) cwd") {
		t.Fatalf("busy mount error = %v, want it held by pid %s", busyErr, pid)
	}
	if err := rec.err("/data/kubelet/pods/d/volumes/outer"); !errors.Is(err, ErrBlocked) {
		t.Errorf("parent of busy mount: %v, want ErrBlocked", err)
	}
	for _, tg := range want[:5] {
		if err := rec.err(tg); err != nil {
			t.Errorf("%s: %v", tg, err)
		}
	}
	for _, p := range []string{v1, filepath.Join(v1, "sub"), stacked, pv} {
		if n := mountCount(t, p); n != 0 {
			t.Errorf("%s still has %d mounts", p, n)
		}
	}
	for _, p := range []string{busy, outer, kubelet, filepath.Join(root, "var/lib/kubelet-old"), filepath.Join(root, "data/kubelet-old/pods/x")} {
		if n := mountCount(t, p); n != 1 {
			t.Errorf("%s has %d mounts, want 1", p, n)
		}
	}
	if b, err := os.ReadFile(filepath.Join(user, "data.txt")); err != nil || string(b) != "precious" {
		t.Errorf("user data after unmount: %q, %v", b, err)
	}

	// Stop the holder; a re-run with the same plan finishes the job and
	// reports the mounts already gone as done.
	_ = holder.Process.Kill()
	_ = holder.Wait()
	rec = applyAll(t, k, env, items)
	for _, it := range items {
		if err := rec.err(it.Target); err != nil {
			t.Errorf("rerun %s: %v", it.Target, err)
		}
	}
	again, err := k.Discover(context.Background(), env)
	if err != nil || len(again) != 0 {
		t.Fatalf("after rerun discovered %d items (%v), want none", len(again), err)
	}
	if n := mountCount(t, kubelet); n != 1 {
		t.Errorf("kubelet root has %d mounts, want 1", n)
	}
}

func TestUnmountLazy(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.PID) {
		return
	}
	testns.Command(t, "sleep")
	root := filepath.Join(sandbox(t), "host")
	busy := filepath.Join(root, "var/lib/kubelet/pods/p/volumes/busy")
	mnt(t, "tmpfs", busy, "tmpfs", 0)
	holder := startHolder(t, busy)
	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	env := &engine.Env{Host: h}

	strict := New(Options{Roots: []string{"/var/lib/kubelet"}})
	items, err := strict.Discover(context.Background(), env)
	if err != nil || len(items) != 1 {
		t.Fatalf("discovered %v (%v), want one item", items, err)
	}
	if err := applyAll(t, strict, env, items).err(items[0].Target); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("without Lazy: %v, want EBUSY", err)
	}
	lazy := New(Options{Roots: []string{"/var/lib/kubelet"}, Lazy: true})
	if err := applyAll(t, lazy, env, items).err(items[0].Target); err != nil {
		t.Fatalf("with Lazy: %v", err)
	}
	if n := mountCount(t, busy); n != 0 {
		t.Errorf("busy mount still listed %d times after lazy unmount", n)
	}
	if err := holder.Process.Signal(unix.Signal(0)); err != nil {
		t.Errorf("holder should still run on the detached mount: %v", err)
	}
}
