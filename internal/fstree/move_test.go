package fstree

import (
	"errors"
	"maps"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/testns"
	"golang.org/x/sys/unix"
)

// sample builds a tree with owners, modes, times, links and a fifo.
func sample(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, dir+"/etc/config.yaml", "cfg")
	writeFile(t, dir+"/etc/pki/key.pem", "secret")
	writeFile(t, dir+"/empty", "")
	symlink(t, "/nonexistent/abs", dir+"/link-abs")
	symlink(t, "etc/config.yaml", dir+"/link-rel")
	if err := unix.Mkfifo(dir+"/fifo", 0o640); err != nil {
		t.Fatal(err)
	}
	must(t, os.Chmod(dir+"/etc/pki/key.pem", 0o600))
	must(t, os.Chmod(dir+"/etc/pki", 0o750))
	must(t, os.Lchown(dir+"/empty", 7, 7))
	must(t, os.Chmod(dir+"/empty", os.ModeSetuid|0o755))
	must(t, os.Lchown(dir+"/etc/config.yaml", 1234, 5678))
	must(t, os.Lchown(dir+"/link-abs", 42, 43))
	old := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, p := range []string{"/etc/config.yaml", "/etc/pki/key.pem", "/etc/pki", "/etc", ""} {
		must(t, os.Chtimes(dir+p, old, old))
	}
	ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, dir+"/link-rel", ts, unix.AT_SYMLINK_NOFOLLOW))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func gone(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there (%v)", p, err)
	}
}

func TestMove(t *testing.T) {
	if !testns.Enter(t, testns.Mount) {
		return
	}
	tests := []struct {
		name   string
		prep   func(t *testing.T, m1, m2 string) (src, dst string)
		want   string // where the moved tree must end up
		rename bool   // same filesystem: the inode must be kept
	}{
		{
			name: "across filesystems copies",
			prep: func(t *testing.T, m1, m2 string) (string, string) { return m1 + "/src", m2 + "/backup/files/src" },
			want: "/m2/backup/files/src",
		},
		{
			name:   "same filesystem renames",
			prep:   func(t *testing.T, m1, m2 string) (string, string) { return m1 + "/src", m1 + "/backup/src" },
			want:   "/m1/backup/src",
			rename: true,
		},
		{
			name: "existing destination gets a suffix",
			prep: func(t *testing.T, m1, m2 string) (string, string) {
				writeFile(t, m2+"/b/src", "older backup")
				writeFile(t, m2+"/b/src.1/x", "older backup")
				return m1 + "/src", m2 + "/b/src"
			},
			want: "/m2/b/src.2",
		},
		{
			name: "leftover partial copy is replaced",
			prep: func(t *testing.T, m1, m2 string) (string, string) {
				writeFile(t, m2+"/b/src.partial/etc/config.yaml", "half-written junk")
				writeFile(t, m2+"/b/src.partial/junk", "junk")
				return m1 + "/src", m2 + "/b/src"
			},
			want: "/m2/b/src",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			mountTmpfs(t, root+"/m1")
			mountTmpfs(t, root+"/m2")
			src, dst := tt.prep(t, root+"/m1", root+"/m2")
			sample(t, src)
			before := snapshot(t, src)
			var st syscall.Stat_t
			must(t, syscall.Lstat(src, &st))
			if err := Move(src, dst); err != nil {
				t.Fatalf("Move: %v", err)
			}
			gone(t, src)
			gone(t, root+tt.want+partialSuffix)
			after := snapshot(t, root+tt.want)
			if !maps.Equal(before, after) {
				for k, v := range before {
					if after[k] != v {
						t.Errorf("%s: copy %q, original %q", k, after[k], v)
					}
				}
				t.Errorf("copy has %d entries, original %d", len(after), len(before))
			}
			fi, err := os.Stat(root + tt.want + "/..")
			must(t, err)
			if tt.name == "across filesystems copies" && fi.Mode().Perm() != 0o700 {
				t.Errorf("created parent mode %v, want 0700", fi.Mode().Perm())
			}
			var st2 syscall.Stat_t
			must(t, syscall.Lstat(root+tt.want, &st2))
			if tt.rename != (st.Ino == st2.Ino && st.Dev == st2.Dev) {
				t.Errorf("rename=%v but inode kept=%v", tt.rename, st.Ino == st2.Ino)
			}
		})
	}
}

func TestMoveKeepsMounts(t *testing.T) {
	if !testns.Enter(t, testns.Mount) {
		return
	}
	root := fixture(t) // one tmpfs, with mounts below root/tree
	err := Move(root+"/tree", root+"/backup/tree")
	want := []string{root + "/tree/a/b/tmpfs", root + "/tree/a/bind", root + "/tree/a/filebind"}
	if got := keptPaths(t, err); !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	checkUserData(t, root)
	mustRead(t, root+"/backup/tree/top.txt", "x")
	mustRead(t, root+"/backup/tree/a/b/c/d/e/deeper.txt", "x")
	if target, err := os.Readlink(root + "/backup/tree/link-abs"); err != nil || target != root+"/outside" {
		t.Errorf("link-abs copied as %q, %v", target, err)
	}
	// The mounts' contents were not copied into the backup.
	gone(t, root+"/backup/tree/a/bind/data.txt")
	gone(t, root+"/backup/tree/a/b/tmpfs/data.txt")
	gone(t, root+"/tree/top.txt")

	// A mount point itself moves nothing.
	err = Move(root+"/tree/a/bind", root+"/backup/bind")
	if got := keptPaths(t, err); !slices.Equal(got, []string{root + "/tree/a/bind"}) {
		t.Errorf("kept %v", got)
	}
	gone(t, root+"/backup/bind")
	mustRead(t, root+"/tree/a/bind/data.txt", "bind data")
}

func TestMoveContents(t *testing.T) {
	if !testns.Enter(t, testns.Mount) {
		return
	}
	root := t.TempDir()
	mountTmpfs(t, root+"/m1")
	mountTmpfs(t, root+"/m2")
	writeFile(t, root+"/m1/k/manifests/etcd.yaml", "pod")
	writeFile(t, root+"/m1/k/admin.conf", "conf")
	writeFile(t, root+"/m1/k/pki/ca.crt", "ca")
	if err := MoveContents(root+"/m1/k", root+"/m2/b/k", []string{"manifests"}); err != nil {
		t.Fatalf("MoveContents: %v", err)
	}
	mustRead(t, root+"/m1/k/manifests/etcd.yaml", "pod")
	mustRead(t, root+"/m2/b/k/admin.conf", "conf")
	mustRead(t, root+"/m2/b/k/pki/ca.crt", "ca")
	if got := entries(t, root+"/m1/k"); !slices.Equal(got, []string{"manifests", "manifests/etcd.yaml"}) {
		t.Errorf("left %v", got)
	}
	gone(t, root+"/m2/b/k/manifests")
}
