package firewall

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/firewall/fixture"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
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

// TestCleanBothBackendsKeepsDecoys plants a host firewall, Docker's chains
// and a user's rules in all four backend×family combinations, then
// kube-proxy, flannel, Calico and CNI state over them; after Apply the
// save output of every backend is byte for byte the decoys' again, a
// second Discover finds nothing, and Restore brings the dirty state back.
func TestCleanBothBackendsKeepsDecoys(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	env := nsSetup(t)
	decoys := decoyed(t, AllBackends())
	nft(t, "table ip kube-proxy {\n\tset cluster-ips {\n\t\ttype ipv4_addr\n\t\telements = { 10.96.0.1 }\n\t}\n}\n")
	wantRules, wantChains := map[string]bool{}, map[string]bool{}
	for _, b := range AllBackends() {
		s := fixture.Owned(b.Family, b.Name, 3)
		load(t, b, s.String())
		for _, r := range s.Rules {
			wantRules[b.String()+" "+r] = true
		}
		for _, c := range s.Chains {
			wantChains[b.String()+" "+c] = true
		}
	}
	dirty := state(t)
	if dirty == decoys {
		t.Fatal("planting owned rules changed nothing")
	}

	k := New(Options{})
	found := discover(t, env, k)
	applyAll(env, k, found).check(t, found)
	rules, chains := targets(ofKind(found, plan.KindRule)), targets(ofKind(found, plan.KindChain))
	sameSet(t, "rules", rules, wantRules)
	sameSet(t, "chains", chains, wantChains)
	for _, want := range []string{
		`ip4/nft nat PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		`ip6/legacy filter FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD`,
		`ip4/legacy nat POSTROUTING -s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully`,
		`ip4/nft nat POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN`,
		`ip4/nft filter INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT`,
	} {
		if !rules[want] {
			t.Errorf("rule not planned: %s", want)
		}
	}
	for _, want := range []string{"ip4/nft nat KUBE-SVC-0000000000000002", "ip6/nft filter cali-INPUT", "ip4/legacy nat CNI-HOSTPORT-DNAT", "ip4/nft mangle KUBE-KUBELET-CANARY", "ip6/legacy nat FLANNEL-POSTRTG"} {
		if !chains[want] {
			t.Errorf("chain not planned: %s", want)
		}
	}
	for tgt := range rules {
		if strings.Contains(tgt, "DOCKER") || strings.Contains(tgt, "allow flannel vxlan") || strings.Contains(tgt, "dport 22") {
			t.Errorf("decoy rule planned: %s", tgt)
		}
	}
	if got := state(t); got != decoys {
		t.Fatalf("after apply the decoys changed:\n%s", lineDiff(decoys, got))
	}
	if left := discover(t, env, k); len(left) != 0 {
		t.Errorf("after apply: %d left: %v", len(left), left)
	}
	// Applying the same plan again (a rerun after a crash) is all done.
	applyAll(env, k, found).check(t, found)
	nft(t, "delete table ip kube-proxy\n") // what the nftables kind does
	if err := Restore(context.Background(), env.BackupDir); err != nil {
		t.Fatal(err)
	}
	if got := state(t); got != dirty {
		t.Fatalf("restore did not bring back the saved rules:\n%s", lineDiff(dirty, got))
	}
	if out, err := exec.Command("nft", "list", "table", "ip", "kube-proxy").CombinedOutput(); err != nil || !strings.Contains(string(out), "10.96.0.1") {
		t.Errorf("restore did not bring back the nft table: %v\n%s", err, out)
	}
}

// TestApplyRuleVanished: a rule removed between plan and apply, and a
// chain a user rule still jumps to, are handled item by item without
// failing the batch for the others.
func TestApplyRuleVanished(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	backends := ip4Backends()
	env, k := planted(t, backends, "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n:USER - [0:0]\n-A PREROUTING -j KUBE-A\n-A OUTPUT -j KUBE-A\n-A USER -j KUBE-B\nCOMMIT\n")
	found := discover(t, env, k)
	if r, c := ofKind(found, plan.KindRule), ofKind(found, plan.KindChain); len(r) != 6 || len(c) != 4 { // USER -j KUBE-B is a foreign rule too
		t.Fatalf("rules %v chains %v", r, c)
	}
	loadAll(t, backends, "*nat\n-D OUTPUT -j KUBE-A\nCOMMIT\n")
	// Apply all but the USER rules: USER's jump stays.
	some := slices.DeleteFunc(slices.Clone(found), func(it plan.Item) bool { return strings.Contains(it.Target, " USER ") })
	checkInUse(t, applyAll(env, k, some), some)
	if s := state(t); strings.Contains(s, "KUBE-A") || !strings.Contains(s, ":KUBE-B") {
		t.Errorf("after apply:\n%s", s)
	}
}

// TestAdminChain: the CNI firewall plugin's CNI-ADMIN is the CNI's while
// empty and the administrator's once it holds a rule. Planned empty and
// filled before apply, it stays with its rule in both backends (the legacy
// fast path never flushes it: its -X fails the commit), while the chains
// planned with it go.
func TestAdminChain(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	backends := ip4Backends()
	env, k := planted(t, backends, "*filter\n:CNI-FORWARD - [0:0]\n:CNI-ADMIN - [0:0]\n-A FORWARD -j CNI-FORWARD\n-A CNI-FORWARD -j CNI-ADMIN\nCOMMIT\n")
	found := discover(t, env, k)
	if got := targets(ofKind(found, plan.KindChain)); len(got) != 4 || !got["ip4/legacy filter CNI-ADMIN"] || !got["ip4/nft filter CNI-ADMIN"] {
		t.Fatalf("an empty CNI-ADMIN is the plugin's: %v", found)
	}
	const admin = "-A CNI-ADMIN -s 192.0.2.7/32 -j DROP"
	loadAll(t, backends, "*filter\n"+admin+"\nCOMMIT\n")
	rec := applyAll(env, k, found)
	for _, it := range found {
		errs := rec.done[it.Key()]
		var ae *AdminChainError
		isAdmin := strings.HasSuffix(it.Target, " CNI-ADMIN")
		if len(errs) != 1 || errors.As(errs[0], &ae) != isAdmin || (!isAdmin && errs[0] != nil) {
			t.Errorf("%s: %v", it.Target, errs)
		}
	}
	for _, b := range backends {
		out, err := exec.Command(b.tool(), "-t", "filter", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("%s -S: %v\n%s", b, err, out)
		}
		if s := string(out); !strings.Contains(s, admin) || strings.Contains(s, "CNI-FORWARD") {
			t.Errorf("%s after apply:\n%s", b, s)
		}
	}
	// Planned again, the filled chain is not Kubernetes' any more.
	if left := discover(t, env, k); len(left) != 0 {
		t.Errorf("after apply: %v", left)
	}
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
