package mounts

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// fakeProc builds a proc-like tree: pid -> links (name -> target) and comm.
func fakeProc(t *testing.T, procs map[int]map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, links := range procs {
		pd := filepath.Join(dir, strconv.Itoa(pid))
		if err := os.MkdirAll(filepath.Join(pd, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, target := range links {
			var err error
			switch name {
			case "comm", "maps":
				err = os.WriteFile(filepath.Join(pd, name), []byte(target), 0o644)
			default:
				err = os.Symlink(target, filepath.Join(pd, name))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// Non-PID entries are skipped.
	if err := os.Symlink("1", filepath.Join(dir, "self")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestHolders(t *testing.T) {
	const point = "/k/pods/x/vol"
	proc := fakeProc(t, map[int]map[string]string{
		123: {"comm": "sleep\n", "cwd": point + "/sub", "root": "/"},
		124: {"comm": "python3\n", "cwd": "/", "fd/3": point + "/file (deleted)", "fd/4": "socket:[99]"},
		125: {"comm": "decoy\n", "cwd": "/k/pods/x/vol-old", "fd/0": "/k/pods/x"},
		126: {"comm": "chrooted\n", "cwd": "/", "root": point},
		127: {"comm": "mapper\n", "cwd": "/", "maps": "7f00-7f01 r--p 00000000 08:01 42 /usr/lib/libc.so\n7f02-7f03 r--p 00000000 00:2a 43 " + point + "/lib with space.so\n"},
	})
	got, err := Holders(proc, point)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]Holder{
		123: {PID: 123, Comm: "sleep", Uses: []string{"cwd"}},
		124: {PID: 124, Comm: "python3", Uses: []string{"fd 3"}},
		126: {PID: 126, Comm: "chrooted", Uses: []string{"root"}},
		127: {PID: 127, Comm: "mapper", Uses: []string{"mmap"}},
	}
	if len(got) != len(want) {
		t.Fatalf("Holders = %+v, want %d holders", got, len(want))
	}
	for _, h := range got {
		t.Run(h.Comm, func(t *testing.T) {
			if !reflect.DeepEqual(h, want[h.PID]) {
				t.Fatalf("holder %+v, want %+v", h, want[h.PID])
			}
		})
	}
	if s := want[123].String(); s != "pid 123 (sleep) cwd" {
		t.Errorf("String = %q", s)
	}
	if _, err := Holders(filepath.Join(proc, "missing"), point); err == nil {
		t.Error("Holders over a missing proc: want an error")
	}
}
