package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
)

// ErrDamaged is wrapped by Check when a decoy did not survive.
var ErrDamaged = errors.New("sandbox decoys damaged")

// Check verifies inside the sandbox that every decoy is intact. The error
// wraps ErrDamaged and lists one problem per line.
func (n *Node) Check(ctx context.Context) error {
	out, err := n.inside(ctx, "check-inside")
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return fmt.Errorf("%w:\n%s", ErrDamaged, strings.TrimSpace(out))
	}
	return fmt.Errorf("check sandbox decoys: %w\n%s", err, out)
}

// Snapshot returns a deterministic listing of everything under the root,
// the mounts under it and the processes, taken inside the sandbox.
func (n *Node) Snapshot(ctx context.Context) (string, error) {
	out, err := n.inside(ctx, "snapshot-inside")
	if err != nil {
		return "", fmt.Errorf("snapshot sandbox: %w\n%s", err, out)
	}
	return out, nil
}

// inside runs a hidden nodesim command in the namespaces; stderr is
// appended to the output so a failure explains itself.
func (n *Node) inside(ctx context.Context, sub string) (string, error) {
	cmd := n.Command(ctx, n.nodesim, sub, "--state", n.state)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String() + errb.String(), err
}

// CheckDecoys returns one line per damaged decoy. It must run inside the
// sandbox (nodesim check-inside): it reads /proc and dials 127.0.0.1 there.
func CheckDecoys(m Manifest) []string {
	var probs []string
	add := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	for _, f := range m.Decoys.Files {
		if p := checkFile(filepath.Join(m.Root, f.Path), f); p != "" {
			add("file %s: %s", f.Path, p)
		}
	}
	for _, u := range m.Decoys.Units {
		if p := checkFile(filepath.Join(m.Root, u.Symlink), DecoyFile{Link: u.Target}); p != "" {
			add("unit symlink %s: %s", u.Symlink, p)
		}
	}
	for _, d := range m.Decoys.Processes {
		if p := checkProcess(m.Root, d); p != "" {
			add("process %d (%s): %s", d.PID, d.Exe, p)
		}
	}
	mounted, err := mountPoints()
	if err != nil {
		add("mounts: %v", err)
	}
	for _, d := range m.Decoys.Mounts {
		if err == nil && !mounted[filepath.Join(m.Root, d.Point)] {
			add("mount %s: no longer mounted", d.Point)
		}
	}
	for _, l := range m.Decoys.Listeners {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Port)), time.Second)
		if err != nil {
			add("listener :%d: %v", l.Port, err)
			continue
		}
		c.Close()
	}
	for _, st := range m.Decoys.States {
		probe, ok := stateProbe(st.Name)
		if !ok {
			add("state %s: no probe of that name", st.Name)
			continue
		}
		got, err := probe(m)
		switch {
		case err != nil:
			add("state %s: %v", st.Name, err)
		case got != st.Want:
			add("state %s changed:\n%s", st.Name, FirstDiff(st.Want, got))
		}
	}
	return probs
}

// FirstDiff names the first line where two state texts differ (decoy
// states here, node snapshots in the e2e tests).
func FirstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("  line %d: want %q\n  line %d: got  %q", i+1, a, i+1, b)
		}
	}
	return ""
}

func checkFile(p string, want DecoyFile) string {
	fi, err := os.Lstat(p)
	if err != nil {
		return "missing: " + err.Error()
	}
	if want.Link != "" {
		if fi.Mode()&os.ModeSymlink == 0 {
			return "is no longer a symlink (" + fi.Mode().String() + ")"
		}
		if t, err := os.Readlink(p); err != nil || t != want.Link {
			return fmt.Sprintf("points to %q, want %q", t, want.Link)
		}
		return ""
	}
	if !fi.Mode().IsRegular() {
		return "is no longer a regular file (" + fi.Mode().String() + ")"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	if digest(b) != want.SHA256 {
		return "content changed"
	}
	return ""
}

func checkProcess(root string, d DecoyProcess) string {
	if !procAlive("/proc", d.PID) {
		return "not running"
	}
	st, err := procStart("/proc", d.PID)
	if err != nil || st != d.Start {
		return "replaced by another process (start time changed)"
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", d.PID))
	if want := filepath.Join(root, d.Exe); err != nil || exe != want {
		return fmt.Sprintf("exe is %q, want %q", exe, want)
	}
	return ""
}

func mountPoints() (map[string]bool, error) {
	ms, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(ms))
	for _, m := range ms {
		set[m.Mountpoint] = true
	}
	return set, nil
}
