package fstree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nodereset/nodereset/internal/testns"
)

// fixture builds, on its own tmpfs, a tree holding every hazard: symlinks to
// user data outside (absolute and relative), a same-filesystem bind mount, a
// separate tmpfs and a file bind mount. It returns the tmpfs root.
func fixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mountTmpfs(t, root)
	writeFile(t, root+"/outside/userdata.txt", "precious")
	writeFile(t, root+"/outside/dir/file", "also precious")
	writeFile(t, root+"/bindsrc/data.txt", "bind data")
	writeFile(t, root+"/bindfile", "file bind data")
	writeFile(t, root+"/tree/top.txt", "x")
	writeFile(t, root+"/tree/a/b/c/deep.txt", "x")
	writeFile(t, root+"/tree/a/b/c/d/e/deeper.txt", "x")
	writeFile(t, root+"/tree/keepme/k.txt", "kept")
	symlink(t, root+"/outside", root+"/tree/link-abs")
	symlink(t, "../../outside/userdata.txt", root+"/tree/a/link-rel")
	symlink(t, root+"/outside/dir", root+"/tree/a/b/link-dir")
	if err := os.MkdirAll(root+"/tree/a/bind", 0o755); err != nil {
		t.Fatal(err)
	}
	bindMount(t, root+"/bindsrc", root+"/tree/a/bind")
	writeFile(t, root+"/tree/a/filebind", "")
	bindMount(t, root+"/bindfile", root+"/tree/a/filebind")
	mountTmpfs(t, root+"/tree/a/b/tmpfs")
	writeFile(t, root+"/tree/a/b/tmpfs/data.txt", "tmpfs data")
	return root
}

func checkUserData(t *testing.T, root string) {
	t.Helper()
	mustRead(t, root+"/outside/userdata.txt", "precious")
	mustRead(t, root+"/outside/dir/file", "also precious")
	mustRead(t, root+"/bindsrc/data.txt", "bind data")
	mustRead(t, root+"/bindfile", "file bind data")
	mustRead(t, root+"/tree/a/b/tmpfs/data.txt", "tmpfs data")
}

func keptPaths(t *testing.T, err error) []string {
	t.Helper()
	var ke *KeptError
	if !errors.As(err, &ke) {
		t.Fatalf("error %v is not a *KeptError", err)
	}
	return ke.Paths
}

func TestRemoveNeverCrossesMountsOrLinks(t *testing.T) {
	if !testns.Enter(t, testns.Mount) {
		return
	}
	modes := []struct {
		name string
		o    func() *opener
	}{
		{"openat2", func() *opener { return &opener{} }},
		{"fallback", func() *opener { return &opener{noOpenat2: true} }},
	}
	for _, m := range modes {
		t.Run(m.name+"/RemoveAll", func(t *testing.T) {
			root := fixture(t)
			kept, err := removeAll(root+"/tree", m.o())
			if err != nil {
				t.Fatalf("removeAll: %v", err)
			}
			wantKept := []string{root + "/tree/a/b/tmpfs", root + "/tree/a/bind", root + "/tree/a/filebind"}
			slices.Sort(kept)
			if !slices.Equal(kept, wantKept) {
				t.Errorf("kept %v, want %v", kept, wantKept)
			}
			wantLeft := []string{"a", "a/b", "a/b/tmpfs", "a/b/tmpfs/data.txt", "a/bind", "a/bind/data.txt", "a/filebind"}
			if got := entries(t, root+"/tree"); !slices.Equal(got, wantLeft) {
				t.Errorf("left in tree: %v, want %v", got, wantLeft)
			}
			checkUserData(t, root)
		})
		t.Run(m.name+"/EmptyDirKeep", func(t *testing.T) {
			root := fixture(t)
			kept, err := emptyDir(root+"/tree", []string{"keepme"}, m.o())
			if err != nil {
				t.Fatalf("emptyDir: %v", err)
			}
			if len(kept) != 3 {
				t.Errorf("kept %v, want the 3 mount points", kept)
			}
			mustRead(t, root+"/tree/keepme/k.txt", "kept")
			for _, gone := range []string{"top.txt", "link-abs", "a/link-rel", "a/b/c"} {
				if _, err := os.Lstat(root + "/tree/" + gone); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still there (%v)", gone, err)
				}
			}
			checkUserData(t, root)
		})
	}
}

func TestRemoveAllPublic(t *testing.T) {
	if !testns.Enter(t, testns.Mount) {
		return
	}
	tests := []struct {
		name     string
		path     string // below the fixture root
		wantKept []string
		gone     []string
		still    []string
	}{
		{name: "tree", path: "tree", wantKept: []string{"tree/a/b/tmpfs", "tree/a/bind", "tree/a/filebind"}, gone: []string{"tree/top.txt"}},
		{name: "symlink itself", path: "tree/link-abs", gone: []string{"tree/link-abs"}, still: []string{"tree/top.txt"}},
		{name: "mount point itself", path: "tree/a/bind", wantKept: []string{"tree/a/bind"}, still: []string{"tree/a/bind/data.txt"}},
		{name: "missing", path: "tree/nope", still: []string{"tree/top.txt"}},
		{name: "plain file", path: "tree/top.txt", gone: []string{"tree/top.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t)
			err := RemoveAll(root + "/" + tt.path)
			if len(tt.wantKept) == 0 {
				if err != nil {
					t.Fatalf("RemoveAll: %v", err)
				}
			} else {
				var want []string
				for _, p := range tt.wantKept {
					want = append(want, root+"/"+p)
				}
				if got := keptPaths(t, err); !slices.Equal(got, want) {
					t.Errorf("kept %v, want %v", got, want)
				}
				if msg := err.Error(); msg != fmt.Sprintf("kept %d mount points: %s; unmount them first", len(want), joinComma(want)) {
					t.Errorf("message %q", msg)
				}
			}
			for _, p := range tt.gone {
				if _, err := os.Lstat(root + "/" + p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still there (%v)", p, err)
				}
			}
			for _, p := range tt.still {
				if _, err := os.Lstat(root + "/" + p); err != nil {
					t.Errorf("%s gone: %v", p, err)
				}
			}
			checkUserData(t, root)
		})
	}
}

func TestEmptyDirOnMountPoint(t *testing.T) {
	if !testns.Enter(t, testns.Mount) {
		return
	}
	root := fixture(t)
	mnt := root + "/tree/a/b/tmpfs"
	writeFile(t, mnt+"/sub/x", "x")
	if err := EmptyDir(mnt); err != nil {
		t.Fatalf("EmptyDir: %v", err)
	}
	if got := entries(t, mnt); len(got) != 0 {
		t.Errorf("left %v", got)
	}
	if _, err := os.Stat(mnt); err != nil {
		t.Errorf("mount point itself removed: %v", err)
	}
	if err := EmptyDir(root + "/tree/link-abs"); err == nil {
		t.Error("EmptyDir through a symlink succeeded")
	}
	mustRead(t, root+"/outside/userdata.txt", "precious")
}

func joinComma(p []string) string {
	s := ""
	for i, x := range p {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s
}

func BenchmarkRemoveAll(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := filepath.Join(b.TempDir(), "tree")
		for d := range 100 {
			dir := filepath.Join(root, fmt.Sprint(d))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			for f := range 100 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(f)), nil, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
		if err := RemoveAll(root); err != nil {
			b.Fatal(err)
		}
	}
}
