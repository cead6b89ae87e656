package sandbox

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
)

// TestSnapshotNetns: a network namespace bind-mounted on a file (what CNI
// leaves in /run/netns) cannot be read; the snapshot names it as a
// namespace and which one, and changes when another takes its place.
func TestSnapshotNetns(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	root := t.TempDir()
	ns := filepath.Join(root, "run/netns/cni-1")
	if err := os.MkdirAll(filepath.Dir(ns), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ns, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/proc/self/ns/net", ns, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind the netns: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(ns, unix.MNT_DETACH) })
	snap, err := TakeSnapshot(root)
	if err != nil {
		t.Fatalf("snapshot of a netns bind mount: %v", err)
	}
	var line string
	for l := range strings.Lines(snap) {
		if strings.HasPrefix(l, "path /run/netns/cni-1 ") {
			line = l
		}
	}
	if !strings.Contains(line, " nsfs ") {
		t.Fatalf("netns line %q, want it named nsfs\n%s", line, snap)
	}
	// Another namespace in its place is another snapshot.
	if err := unix.Unmount(ns, 0); err != nil {
		t.Fatal(err)
	}
	// A new namespace on a thread of its own, which dies with it (the
	// goroutine exits locked).
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("/proc/thread-self/ns/net", ns, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Fatalf("bind another netns: %v", err)
	}
	again, err := TakeSnapshot(root)
	if err != nil {
		t.Fatal(err)
	}
	if again == snap {
		t.Error("snapshot did not change when another namespace was bound there")
	}
}
