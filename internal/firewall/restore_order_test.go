package firewall

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/internal/testns"
)

// callRunner records the programs restore runs and fails the ones named.
type callRunner struct {
	calls []string
	fail  map[string]bool
}

func (r *callRunner) Has(string) bool { return true }
func (r *callRunner) Run(_ context.Context, name string, args []string, _ []byte) ([]byte, error) {
	r.calls = append(r.calls, name+" "+strings.Join(args, " "))
	if r.fail[name] {
		return nil, errors.New("exit status 2")
	}
	return nil, nil
}

// The ipsets go back before the rules that match them; a rule restore that
// fails names the sets the backup cannot bring back.
func TestRestoreIPSetsFirst(t *testing.T) {
	if !testns.Enter(t, testns.Net) {
		return
	}
	dir := filepath.Join(t.TempDir(), BackupDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		IPSetFile:       "create KUBE-CLUSTER-IP hash:ip,port family inet\nadd KUBE-CLUSTER-IP 10.96.0.1,tcp:443\n",
		"ip4-nft.rules": "*filter\n-A INPUT -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\n-A INPUT -m set --match-set KUBE-GONE src -j ACCEPT\nCOMMIT\n",
	}
	for name, c := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := &callRunner{}
	if err := restoreWith(context.Background(), filepath.Dir(dir), r); err != nil {
		t.Fatal(err)
	}
	if len(r.calls) != 2 || r.calls[0] != "ipset restore -exist" || !strings.HasPrefix(r.calls[1], "iptables-nft-restore") {
		t.Fatalf("restore ran %q, want ipset restore, then iptables-nft-restore", r.calls)
	}
	// This test's netns has no sets at all: the fake ipset restore made none.
	r = &callRunner{fail: map[string]bool{"iptables-nft-restore": true}}
	err := restoreWith(context.Background(), dir, r)
	if err == nil || !strings.Contains(err.Error(), "cannot bring back: KUBE-CLUSTER-IP, KUBE-GONE") {
		t.Errorf("failed restore: %v; want it to name the missing sets", err)
	}
}
