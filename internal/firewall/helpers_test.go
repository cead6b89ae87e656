package firewall

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nodereset/nodereset/internal/firewall/fixture"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nsSetup runs inside the test's own namespaces: a private /run (so
// /run/xtables.lock stays in), lo up, a tmpfs host root with a backup dir.
func nsSetup(t testing.TB) *engine.Env {
	t.Helper()
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy", "nft"} {
		testns.Command(t, c)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(h.Path("/run/flannel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.Path("/run/flannel/subnet.env"), []byte(fixture.SubnetEnv), 0o644); err != nil {
		t.Fatal(err)
	}
	bd := filepath.Join(root, "backup")
	if err := os.MkdirAll(bd, 0o700); err != nil {
		t.Fatal(err)
	}
	return &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})), BackupDir: bd}
}

func load(t testing.TB, b Backend, script string) {
	t.Helper()
	if err := restore(context.Background(), ExecRunner{}, b, []byte(script)); err != nil {
		t.Fatalf("plant %s: %v\n%s", b, err, script)
	}
}

// loadAll loads one script into every backend.
func loadAll(t testing.TB, backends []Backend, script string) {
	t.Helper()
	for _, b := range backends {
		load(t, b, script)
	}
}

// state prints every backend's canonical save output.
func state(t testing.TB) string {
	t.Helper()
	var s strings.Builder
	for _, b := range AllBackends() {
		tables, _, _, err := save(context.Background(), ExecRunner{}, b)
		if err != nil {
			t.Fatal(err)
		}
		s.WriteString("# " + b.String() + "\n" + canonical(tables))
	}
	return s.String()
}

type recorder struct {
	mu    sync.Mutex
	start map[string]int
	done  map[string][]error
}

func newRecorder() *recorder { return &recorder{start: map[string]int{}, done: map[string][]error{}} }
func (r *recorder) Start(it plan.Item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start[it.Key()]++
}
func (r *recorder) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done[it.Key()] = append(r.done[it.Key()], err)
}

// check fails unless every item was reported exactly once without error.
func (r *recorder) check(t testing.TB, items []plan.Item) {
	t.Helper()
	for _, it := range items {
		errs := r.done[it.Key()]
		if len(errs) != 1 || errs[0] != nil {
			t.Errorf("%s: reported %v", it.Key(), errs)
		}
	}
}

// ip4Backends are the two backends of one family, enough where the
// families do not differ.
func ip4Backends() []Backend { return []Backend{{"ip4", "nft"}, {"ip4", "legacy"}} }

// planted is the namespaces' env without backups, with script loaded into
// every backend, and the kind for those backends.
func planted(t testing.TB, backends []Backend, script string) (*engine.Env, *Kind) {
	t.Helper()
	env := nsSetup(t)
	env.BackupDir = ""
	loadAll(t, backends, script)
	return env, New(Options{Backends: backends})
}

// decoyed loads the decoys into backends and returns the state.
func decoyed(t testing.TB, backends []Backend) string {
	t.Helper()
	for _, b := range backends {
		load(t, b, fixture.Decoys(b.Family).String())
	}
	return state(t)
}

// discover is k.Discover, failing the test on an error.
func discover(t testing.TB, env *engine.Env, k engine.Kind) []plan.Item {
	t.Helper()
	items, err := k.Discover(context.Background(), env)
	if err != nil {
		t.Fatalf("discover %s: %v", k.Kind(), err)
	}
	return items
}

// applyAll is k.Apply with a recorder of its own.
func applyAll(env *engine.Env, k engine.Kind, items []plan.Item) *recorder {
	rec := newRecorder()
	k.Apply(context.Background(), env, items, rec)
	return rec
}

// ofKind is the items of one plan kind.
func ofKind(items []plan.Item, kind plan.Kind) []plan.Item {
	var out []plan.Item
	for _, it := range items {
		if it.Kind == kind {
			out = append(out, it)
		}
	}
	return out
}

func targets(items []plan.Item) map[string]bool {
	m := map[string]bool{}
	for _, it := range items {
		m[it.Target] = true
	}
	return m
}

func nft(t testing.TB, script string) {
	t.Helper()
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
}

func sameSet(t testing.TB, what string, got, want map[string]bool) {
	t.Helper()
	for k := range want {
		if !got[k] {
			t.Errorf("%s: planted but not found: %s", what, k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("%s: found but not planted as owned: %s", what, k)
		}
	}
}

func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n- " + x + "\n+ " + y
		}
	}
	return ""
}
