package ipsets

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
)

func TestRestoreScript(t *testing.T) {
	tests := []struct {
		name, saved, want string
	}{
		{"owned set with members, user set dropped",
			"create fail2ban-sshd hash:ip family inet\nadd fail2ban-sshd 192.0.2.9\ncreate KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024\nadd KUBE-CLUSTER-IP 10.96.0.1,tcp:443\n",
			"create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024\nflush KUBE-CLUSTER-IP\nadd KUBE-CLUSTER-IP 10.96.0.1,tcp:443\n"},
		{"a user set whose member names an owned set", "create mine list:set\nadd mine KUBE-X\n", ""},
		{"a bare prefix is not owned", "create KUBE- hash:ip\n", ""},
		{"comments and blank lines", "\n# x\ncreate cali40all hash:net\n", "create cali40all hash:net\nflush cali40all\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(restoreScript([]byte(tc.saved))); got != tc.want {
				t.Errorf("script\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

type execRunner struct{}

func (execRunner) Has(name string) bool { _, err := exec.LookPath(name); return err == nil }
func (execRunner) Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd.Output()
}

func members(t *testing.T, set string) string {
	t.Helper()
	out, err := exec.Command("ipset", "list", set).Output()
	if err != nil {
		return "gone"
	}
	_, m, _ := strings.Cut(string(out), "Members:\n")
	return strings.TrimSpace(m)
}

// TestSaveRestore: real sets in a test netns. Save holds the owned sets
// only; Restore brings them back with their members once destroyed, and
// replaces a set that is there whole; the user's set is never touched.
func TestSaveRestore(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	testns.Command(t, "ipset")
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	run(t, "ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port")
	run(t, "ipset", "add", "KUBE-CLUSTER-IP", "10.96.0.1,tcp:443")
	run(t, "ipset", "create", "KUBE-NODE-PORT-TCP", "bitmap:port", "range", "0-65535")
	run(t, "ipset", "add", "KUBE-NODE-PORT-TCP", "30080")
	run(t, "ipset", "create", "fail2ban-sshd", "hash:ip")
	run(t, "ipset", "add", "fail2ban-sshd", "192.0.2.9")
	ctx := context.Background()
	saved, unsaved, err := Save(ctx, execRunner{})
	if err != nil || unsaved != nil {
		t.Fatal(unsaved, err)
	}
	if s := string(saved); !strings.Contains(s, "add KUBE-CLUSTER-IP 10.96.0.1,tcp:443") || !strings.Contains(s, "create KUBE-NODE-PORT-TCP") || strings.Contains(s, "fail2ban") {
		t.Fatalf("saved:\n%s", saved)
	}
	if err := netlink.IpsetDestroy("KUBE-CLUSTER-IP"); err != nil {
		t.Fatal(err)
	}
	run(t, "ipset", "add", "KUBE-NODE-PORT-TCP", "31000") // added after the backup
	run(t, "ipset", "del", "fail2ban-sshd", "192.0.2.9")  // the user's own change
	for range 2 {
		if err := Restore(ctx, execRunner{}, saved); err != nil {
			t.Fatal(err)
		}
		if m := members(t, "KUBE-CLUSTER-IP"); m != "10.96.0.1,tcp:443" {
			t.Errorf("KUBE-CLUSTER-IP members %q", m)
		}
		if m := members(t, "KUBE-NODE-PORT-TCP"); m != "30080" {
			t.Errorf("KUBE-NODE-PORT-TCP members %q, want the saved ones only", m)
		}
		if m := members(t, "fail2ban-sshd"); m != "" {
			t.Errorf("the user's set was restored over: %q", m)
		}
	}
	if m, err := Missing([]string{"KUBE-CLUSTER-IP", "KUBE-GONE", "fail2ban-sshd"}); err != nil || strings.Join(m, ",") != "KUBE-GONE" {
		t.Errorf("Missing = %v, %v", m, err)
	}
	if saved, unsaved, err := Save(ctx, noIpset{}); err != nil || saved != nil || strings.Join(unsaved, ",") != "KUBE-CLUSTER-IP,KUBE-NODE-PORT-TCP" {
		t.Errorf("Save without the ipset program: %q, unsaved %v, %v", saved, unsaved, err)
	}
}

type noIpset struct{ execRunner }

func (noIpset) Has(string) bool { return false }
