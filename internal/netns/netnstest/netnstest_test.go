package netnstest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
)

func inode(t *testing.T, fd int, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	var err error
	if path != "" {
		err = unix.Stat(path, &st)
	} else {
		err = unix.Fstat(fd, &st)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestNew: the namespace is a new one, the pin names that same one, and
// the caller (every thread of it) stays where it was.
func TestNew(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	own := inode(t, -1, "/proc/self/ns/net")
	pin := filepath.Join(t.TempDir(), "cni-test")
	if err := os.WriteFile(pin, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(pin, unix.MNT_DETACH) })
	tests := []struct{ name, pin string }{{"anonymous", ""}, {"pinned", pin}}
	seen := map[uint64]bool{own: true}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fd, err := New(tc.pin)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			ns := inode(t, fd, "")
			if seen[ns] {
				t.Errorf("namespace %d is not new", ns)
			}
			seen[ns] = true
			if tc.pin != "" {
				if got := inode(t, -1, tc.pin); got != ns {
					t.Errorf("pin %s names namespace %d, want %d", tc.pin, got, ns)
				}
			}
			if got := inode(t, -1, "/proc/thread-self/ns/net"); got != own {
				t.Errorf("caller's thread in namespace %d, want its own %d", got, own)
			}
			if got := inode(t, -1, "/proc/self/ns/net"); got != own {
				t.Errorf("caller in namespace %d, want its own %d", got, own)
			}
		})
	}
}
