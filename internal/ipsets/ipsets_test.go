package ipsets

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

func TestOwned(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"KUBE-CLUSTER-IP", true},
		{"KUBE-LOOP-BACK", true},
		{"KUBE-", false},
		{"kube-cluster-ip", false},
		{"cali40all-ipam-pools", true},
		{"cali60s:abcdef", true},
		{"cali4t-tmp", true},
		{"calibration", false},
		{"cali", false},
		{"weave-k?Z;25^M}|1s7P3|H9i;*;MhG", true},
		{"weave", false},
		{"docker-blocklist", false},
		{"fail2ban-sshd", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := Owned(tc.name); ok != tc.want {
				t.Errorf("Owned(%q) = %v, want %v", tc.name, ok, tc.want)
			}
		})
	}
}

type rec struct{ done map[string]error }

func (r *rec) Start(plan.Item)              {}
func (r *rec) Done(it plan.Item, err error) { r.done[it.Target] = err }

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func names(t *testing.T) string {
	t.Helper()
	sets, err := netlink.IpsetListAll()
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, s := range sets {
		n = append(n, s.SetName)
	}
	sort.Strings(n)
	return strings.Join(n, ",")
}

// TestDestroyOwnedSets: real sets in a test netns; a set a user rule
// still matches is reported in use, the user's sets stay.
func TestDestroyOwnedSets(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	testns.Command(t, "ipset")
	testns.Command(t, "iptables-nft")
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]string{
		{"KUBE-CLUSTER-IP", "hash:ip,port"}, {"KUBE-LOOP-BACK", "hash:ip,port,ip"}, {"KUBE-NODE-PORT-TCP", "bitmap:port", "range", "0-65535"},
		{"cali40all-ipam-pools", "hash:net"}, {"KUBE-IN-USE", "hash:ip"}, {"fail2ban-sshd", "hash:ip"}, {"calibration", "hash:ip"},
	} {
		run(t, "ipset", append([]string{"create"}, s...)...)
	}
	run(t, "ipset", "add", "KUBE-CLUSTER-IP", "10.96.0.1,tcp:443")
	run(t, "iptables-nft", "-A", "INPUT", "-m", "set", "--match-set", "KUBE-IN-USE", "src", "-j", "ACCEPT")
	h, _ := host.New(t.TempDir())
	env := &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	k := New(Options{})
	items, err := k.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 5 {
		t.Fatalf("discovered %v", items)
	}
	items = append(items, plan.Item{Kind: plan.KindIPSet, Target: "KUBE-GONE"})
	r := &rec{done: map[string]error{}}
	k.Apply(context.Background(), env, items, r)
	var inUse *InUseError
	for _, it := range items {
		err := r.done[it.Target]
		if it.Target == "KUBE-IN-USE" {
			if !errors.As(err, &inUse) {
				t.Errorf("KUBE-IN-USE: %v, want an InUseError", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", it.Target, err)
		}
	}
	if got := names(t); got != "KUBE-IN-USE,calibration,fail2ban-sshd" {
		t.Errorf("sets left: %s", got)
	}
}
