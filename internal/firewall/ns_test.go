package firewall

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
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

func discoverApply(t testing.TB, env *engine.Env, kinds []engine.Kind) map[plan.Kind][]plan.Item {
	t.Helper()
	out := map[plan.Kind][]plan.Item{}
	for _, k := range kinds {
		items, err := k.Discover(context.Background(), env)
		if err != nil {
			t.Fatalf("discover %s: %v", k.Kind(), err)
		}
		out[k.Kind()] = items
	}
	for _, k := range kinds {
		rec := newRecorder()
		k.Apply(context.Background(), env, out[k.Kind()], rec)
		rec.check(t, out[k.Kind()])
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
	for _, b := range AllBackends() {
		load(t, b, fixture.Decoys(b.Family).String())
	}
	decoys := state(t)
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

	kinds := New(Options{})
	found := discoverApply(t, env, kinds)
	rules, chains := targets(found[plan.KindRule]), targets(found[plan.KindChain])
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
	for _, k := range kinds {
		if left, err := k.Discover(context.Background(), env); err != nil || len(left) != 0 {
			t.Errorf("%s after apply: %d left (%v): %v", k.Kind(), len(left), err, left)
		}
	}
	// Applying the same plan again (a rerun after a crash) is all done.
	for _, k := range kinds {
		rec := newRecorder()
		k.Apply(context.Background(), env, found[k.Kind()], rec)
		rec.check(t, found[k.Kind()])
	}
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
	env := nsSetup(t)
	env.BackupDir = ""
	for _, b := range []Backend{{"ip4", "nft"}, {"ip4", "legacy"}} {
		load(t, b, "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n:USER - [0:0]\n-A PREROUTING -j KUBE-A\n-A OUTPUT -j KUBE-A\n-A USER -j KUBE-B\nCOMMIT\n")
	}
	kinds := New(Options{Backends: []Backend{{"ip4", "nft"}, {"ip4", "legacy"}}})
	rulesK, chainsK := kinds[0], kinds[1]
	ruleItems, _ := rulesK.Discover(context.Background(), env)
	chainItems, _ := chainsK.Discover(context.Background(), env)
	if len(ruleItems) != 6 || len(chainItems) != 4 { // USER -j KUBE-B is a foreign rule too
		t.Fatalf("rules %v chains %v", ruleItems, chainItems)
	}
	for _, b := range []Backend{{"ip4", "nft"}, {"ip4", "legacy"}} {
		load(t, b, "*nat\n-D OUTPUT -j KUBE-A\nCOMMIT\n")
	}
	// Apply only the PREROUTING/OUTPUT rules: USER's jump stays.
	var some []plan.Item
	for _, it := range ruleItems {
		if !strings.Contains(it.Target, " USER ") {
			some = append(some, it)
		}
	}
	rec := newRecorder()
	rulesK.Apply(context.Background(), env, some, rec)
	rec.check(t, some)
	rec = newRecorder()
	chainsK.Apply(context.Background(), env, chainItems, rec)
	for _, it := range chainItems {
		errs := rec.done[it.Key()]
		inUse := strings.HasSuffix(it.Target, "KUBE-B")
		if len(errs) != 1 || (errs[0] != nil) != inUse {
			t.Errorf("%s: %v (in use: %v)", it.Target, errs, inUse)
		}
		// The legacy backend first tries the plan as one restore (the
		// table's commit fails whole, nothing changes) and so starts it;
		// the nft backend checks references before touching anything.
		if inUse && strings.HasPrefix(it.Target, "ip4/nft") && rec.start[it.Key()] != 0 {
			t.Errorf("%s: started though it is in use", it.Target)
		}
	}
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
	env := nsSetup(t)
	env.BackupDir = ""
	backends := []Backend{{"ip4", "nft"}, {"ip4", "legacy"}}
	for _, b := range backends {
		load(t, b, "*filter\n:CNI-FORWARD - [0:0]\n:CNI-ADMIN - [0:0]\n-A FORWARD -j CNI-FORWARD\n-A CNI-FORWARD -j CNI-ADMIN\nCOMMIT\n")
	}
	kinds := New(Options{Backends: backends})
	rulesK, chainsK := kinds[0], kinds[1]
	ruleItems, err := rulesK.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	chainItems, err := chainsK.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if got := targets(chainItems); len(got) != 4 || !got["ip4/legacy filter CNI-ADMIN"] || !got["ip4/nft filter CNI-ADMIN"] {
		t.Fatalf("an empty CNI-ADMIN is the plugin's: chains %v", chainItems)
	}
	const admin = "-A CNI-ADMIN -s 192.0.2.7/32 -j DROP"
	for _, b := range backends {
		load(t, b, "*filter\n"+admin+"\nCOMMIT\n")
	}
	rec := newRecorder()
	rulesK.Apply(context.Background(), env, ruleItems, rec)
	rec.check(t, ruleItems)
	rec = newRecorder()
	chainsK.Apply(context.Background(), env, chainItems, rec)
	for _, it := range chainItems {
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
	if left, err := chainsK.Discover(context.Background(), env); err != nil || len(left) != 0 {
		t.Errorf("chains after apply: %v (%v)", left, err)
	}
	if left, err := rulesK.Discover(context.Background(), env); err != nil || len(left) != 0 {
		t.Errorf("rules after apply: %v (%v)", left, err)
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
