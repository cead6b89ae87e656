package e2e

import (
	"bytes"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestReviewOutput: what an operator reads on a node with a firewall (the
// review's findings 10 and 11). The plan hides empty phases, pads no
// column to a 200-column iptables rule, summarises long runs of one kind;
// counts are in good English; verify does not start with a blank line; a
// wait on a process that ignores SIGTERM is announced without -v.
func TestReviewOutput(t *testing.T) {
	n := firewallNode(t)

	pl := nodereset(t, n, "plan")
	if pl.code != 0 {
		t.Fatalf("plan: %s", pl)
	}
	if !regexp.MustCompile(`(?m)^Plan for sandbox-node .*: \d+ items in \d+ of \d+ phases$`).MatchString(pl.stdout) {
		t.Errorf("plan header does not count items and phases:\n%s", pl.stdout)
	}
	if m := regexp.MustCompile(`(?m)^\[\d+/\d+\] .*: 0 items?$`).FindString(pl.stdout); m != "" {
		t.Errorf("empty phase listed: %q", m)
	}
	if !regexp.MustCompile(`(?m)^  \.\.\. and \d+ more iptables-rule items \(remove\); -v lists them all$`).MatchString(pl.stdout) {
		t.Errorf("the iptables rules are not summarised:\n%s", pl.stdout)
	}
	for _, line := range strings.Split(pl.stdout, "\n") {
		if strings.Contains(line, strings.Repeat(" ", 60)) {
			t.Errorf("a column is padded past its cap:\n%q", line)
			break
		}
	}
	all := nodereset(t, n, "plan", "-v")
	if strings.Contains(all.stdout, "more iptables-rule items") || strings.Count(all.stdout, "\n") <= strings.Count(pl.stdout, "\n") {
		t.Errorf("plan -v must list every item:\n%s", all.stdout)
	}

	v := nodereset(t, n, "verify")
	if v.code != 1 || !strings.HasPrefix(v.stdout, "Verify: NOT clean.\n") {
		t.Errorf("verify on a dirty node: want exit 1 and output starting with its verdict: %s", v)
	}

	// etcd in the sandbox ignores SIGTERM: 3s is past the 2s notice.
	r := nodereset(t, n, "reset", "--yes", "--term-timeout", "3s", "--kill-timeout", "2s")
	if r.code != 0 {
		t.Fatalf("reset: %s", r)
	}
	if !regexp.MustCompile(`waiting up to 3s for etcd \(pid \d+\) after SIGTERM, then SIGKILL`).MatchString(r.stderr) ||
		strings.Count(r.stderr, "waiting up to") != 1 {
		t.Errorf("want one notice of the wait for etcd at verbosity 0:\n%s", r.stderr)
	}
	if !regexp.MustCompile(`\n\nApplied \d+ items: \d+ done, 0 failed\. .*\n\nVerify: clean\.`).MatchString(r.stdout) {
		t.Errorf("report and verify must each be set off by one blank line:\n%s", r.stdout)
	}
	if out := r.stdout + r.stderr + pl.stdout; regexp.MustCompile(`\b1 items\b`).MatchString(out) {
		t.Errorf(`"1 items" printed:\n%s`, out)
	}

}

// TestReviewDrainFlags: drain takes kubectl's --dry-run values and hides
// -n/--namespace (still accepted, as kubectl's global flag). No sandbox:
// nothing here gets past the kubeconfig.
func TestReviewDrainFlags(t *testing.T) {
	cli := func(args ...string) run {
		t.Helper()
		cmd := exec.Command(bins.nodereset, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		r := run{stdout: out.String(), stderr: errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if h := cli("drain", "--help"); h.code != 0 || !strings.Contains(h.stdout, `--dry-run string[="client"]`) || strings.Contains(h.stdout, "--namespace") {
		t.Errorf("drain --help: want kubectl's --dry-run and no --namespace: %s", h)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad value", []string{"--dry-run=maybe"}, "--dry-run=maybe: use none, client or server"},
		// Past flag parsing, to the kubeconfig.
		{"client, and -n", []string{"--dry-run=client", "-n", "default"}, "kubeconfig: stat /nonexistent/kubeconfig"},
		{"bare", []string{"--dry-run"}, "kubeconfig: stat /nonexistent/kubeconfig"},
		{"server", []string{"--dry-run=server"}, "kubeconfig: stat /nonexistent/kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(append([]string{"drain", "worker-3", "--kubeconfig", "/nonexistent/kubeconfig"}, tc.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "ParseBool") {
				t.Errorf("want exit 2 naming %q: %s", tc.want, r)
			}
		})
	}
}
