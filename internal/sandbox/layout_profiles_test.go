package sandbox

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/internal/profile"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// layoutProfile is the --profile a layout is reset with; "" lets
// detection choose.
func layoutProfile(layout string) []string {
	if layout == "rke2" {
		return []string{"rke2"} // K3s leftovers beside it must stay
	}
	return nil
}

// wantDetected is what detection must find on each layout.
var wantDetected = map[string][]string{
	"kubeadm": {"kubeadm"}, "kubespray": {"kubeadm", "kubespray"}, "rke1": {"rke1"},
	"rke2": {"rke2", "k3s"}, "k3s": {"k3s"}, "k3s-custom": {"k3s"}, "rancher": {"rke2", "rancher"},
}

// TestProfileLayouts plants every layout (without its processes) in a
// private mount namespace and checks, with the library alone, that the
// right profiles are detected and that discovery plans exactly the
// layout's expected items and no decoy. Processes are the e2e tests'.
func TestProfileLayouts(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.PID|testns.Net) {
		return
	}
	for _, name := range Profiles() {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			if err := unix.Mount("tmpfs", root, "tmpfs", 0, "mode=755"); err != nil {
				t.Fatal(err)
			}
			defer unix.Unmount(root, unix.MNT_DETACH)
			m := Manifest{Root: root}
			b := &builder{root: root, m: &m}
			layout, err := profileLayout(name)
			if err != nil {
				t.Fatal(err)
			}
			layout(b, 2, 3)
			specs := profileProcSpecs(name)
			for _, s := range specs {
				b.file(s.exe, "fake binary", 0o755)
			}
			if b.err != nil {
				t.Fatal(b.err)
			}
			h, err := host.New(root)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := profile.Detect(h, "")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				if len(p.Evidence) > 0 {
					got = append(got, p.Name)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(wantDetected[name]))
			if !slices.Equal(got, want) {
				t.Errorf("detected %q, want %q", got, want)
			}
			prof, err := profile.Select(ps, layoutProfile(name), false)
			if err != nil {
				t.Fatal(err)
			}
			env := &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			pl, err := engine.Plan(context.Background(), env, profile.Phases(prof, profile.Options{Backup: true}))
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			compareExpected(t, m, pl)
			for _, f := range m.Decoys.Files {
				for _, it := range pl.Items() {
					if it.Target == f.Path || (it.Kind != plan.KindPath && host.Under(f.Path, it.Target)) {
						t.Errorf("decoy %s planned by %s %s", f.Path, it.Kind, it.Target)
					}
				}
			}
			// A decoy inside a planned directory must be kept by that spec.
			for _, f := range m.Decoys.Files {
				for _, s := range prof.Paths {
					if host.Under(f.Path, s.Path) && !kept(s, f.Path) {
						t.Errorf("decoy %s lies inside %s (%s) and is not kept", f.Path, s.Path, s.Action)
					}
				}
			}
			// Every component binary the layout runs is the profile's,
			// by path or by name and port.
			for _, s := range specs {
				if !s.decoy && !slices.Contains(prof.Executables, s.exe) && len(prof.Ports[filepath.Base(s.exe)]) == 0 {
					t.Errorf("process %s is neither an executable nor a named component of %s", s.exe, prof.Name)
				}
				if s.decoy && slices.Contains(prof.Executables, s.exe) {
					t.Errorf("decoy process %s is one of %s's executables", s.exe, prof.Name)
				}
			}
			if _, err := os.Stat(filepath.Join(root, "etc/hostname")); err != nil {
				t.Error(err)
			}
		})
	}
}

func kept(s paths.Spec, p string) bool {
	rel := strings.TrimPrefix(p, s.Path+"/")
	first := strings.Split(rel, "/")[0]
	return (s.Action == plan.ActionEmpty || s.Action == plan.ActionBackupEmpty) && slices.Contains(s.Keep, first)
}

// compareExpected checks that the plan holds every expected item other
// than processes as often as planted, and nothing more.
func compareExpected(t *testing.T, m Manifest, pl *plan.Plan) {
	t.Helper()
	// No process runs here, so neither processes nor the pods found
	// through their shims can be planned.
	running := func(k plan.Kind) bool { return k == plan.KindProcess || k == plan.KindPod }
	count := map[string]int{}
	for _, it := range pl.Items() {
		if !running(it.Kind) {
			count[string(it.Kind)+" "+it.Target]++
		}
	}
	for _, e := range m.Expected {
		if !running(e.Kind) {
			count[string(e.Kind)+" "+e.Target]--
		}
	}
	for k, n := range count {
		switch {
		case n < 0:
			t.Errorf("expected %s missing from the plan", k)
		case n > 0:
			t.Errorf("plan has %s, which the layout did not plant", k)
		}
	}
}
