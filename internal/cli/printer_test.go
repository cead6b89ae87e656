package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// items returns n items of one kind and action, targets named by prefix.
func items(n int, kind plan.Kind, action plan.Action, prefix string) []plan.Item {
	out := make([]plan.Item, n)
	for i := range out {
		out[i] = plan.Item{Kind: kind, Action: action, Target: fmt.Sprintf("%s%d", prefix, i), Reason: "why " + prefix}
	}
	return out
}

func textPrinter(t *testing.T, verbosity int) (*printer, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	p, err := newPrinter(&out, &errb, "text", verbosity)
	if err != nil {
		t.Fatal(err)
	}
	return p, &out, &errb
}

func TestPrintPlan(t *testing.T) {
	long := "ip4/nft filter INPUT -m comment --comment " + strings.Repeat("x", 150) + " -j KUBE-FIREWALL"
	pl := &plan.Plan{Host: "n1", HostRoot: "/", Profiles: []string{"kubeadm"}, Phases: []plan.Phase{
		{Name: "stop services", Items: items(1, plan.KindService, plan.ActionStopDisable, "kubelet.service")},
		{Name: "remove containers"},
		{Name: "firewall", Items: append(append(
			[]plan.Item{{Kind: plan.KindRule, Action: plan.ActionRemove, Target: long, Reason: "jumps to KUBE-FIREWALL"}},
			items(30, plan.KindRule, plan.ActionRemove, "rule-")...),
			items(3, plan.KindChain, plan.ActionRemove, "chain-")...)},
		{Name: "unmount"},
	}}
	for _, tc := range []struct {
		name      string
		verbosity int
		want      []string
		not       []string
	}{
		{"empty phases hidden, numbered among the rest", 0,
			[]string{"35 items in 2 of 4 phases", "\n[1/2] stop services: 1 item\n", "\n[2/2] firewall: 34 items\n"},
			[]string{"remove containers", "unmount", "[3/", "(1 items)", "1 items"}},
		{"a long run is summarised at verbosity 0", 0,
			[]string{"  remove  iptables-rule   rule-8 ", "... and 21 more iptables-rule items (remove); -v lists them all\n", "chain-2"},
			[]string{"rule-9 "}},
		{"-v lists every item", 1,
			[]string{"rule-29", "chain-2"},
			[]string{"more iptables-rule"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, out, _ := textPrinter(t, tc.verbosity)
			p.plan(pl)
			got := out.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("want %q in:\n%s", w, got)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(got, w) {
					t.Errorf("want no %q in:\n%s", w, got)
				}
			}
		})
	}

	t.Run("columns are padded to at most colCap", func(t *testing.T) {
		p, out, _ := textPrinter(t, 0)
		p.plan(pl)
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.Contains(line, "rule-0 ") {
				// action(6) kind(14) target(colCap) reason, two spaces between.
				if want := 2 + 6 + 2 + 14 + 2 + colCap + 2 + len("why rule-"); len(line) != want {
					t.Errorf("short row is %d columns, want %d:\n%q", len(line), want, line)
				}
			}
			if strings.Contains(line, long) && !strings.HasSuffix(line, long+"  jumps to KUBE-FIREWALL") {
				t.Errorf("a cell over colCap must be followed by two spaces only:\n%q", line)
			}
		}
	})
}

func TestPrintSections(t *testing.T) {
	clean := &engine.VerifyReport{Clean: true}
	for _, tc := range []struct {
		name  string
		print func(p *printer)
		want  string
	}{
		{"verify alone starts without a blank line", func(p *printer) { p.verify(clean) }, "Verify: clean."},
		{"verify after a report is set off by one", func(p *printer) {
			p.report(&engine.Report{RunDir: "/run", Results: []plan.Result{{Status: plan.StatusDone}}})
			p.verify(clean)
		}, "Applied 1 item: 1 done, 0 failed. Journal and backups: /run\n\nVerify: clean."},
		{"report alone", func(p *printer) { p.report(&engine.Report{RunDir: "/run"}) }, "Applied 0 items: 0 done"},
		{"cluster results alone", func(p *printer) { p.results("Report", nil, nil) }, "Report:\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, out, _ := textPrinter(t, 0)
			tc.print(p)
			if got := out.String(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("want output starting %q, got:\n%q", tc.want, got)
			}
		})
	}
}

func TestPrintVerifyResidueSummarised(t *testing.T) {
	v := &engine.VerifyReport{Residue: items(25, plan.KindMount, plan.ActionUnmount, "/var/lib/kubelet/pods/p")}
	for _, tc := range []struct {
		verbosity int
		lines     int
	}{{0, runShown + 1}, {1, 25}} {
		t.Run(fmt.Sprintf("v%d", tc.verbosity), func(t *testing.T) {
			p, out, _ := textPrinter(t, tc.verbosity)
			p.verify(v)
			if got := strings.Count(out.String(), "\n  "); got != tc.lines {
				t.Errorf("%d residue lines, want %d:\n%s", got, tc.lines, out)
			}
		})
	}
}

func TestProgressCounts(t *testing.T) {
	for _, tc := range []struct {
		items int
		want  string
	}{{1, "==> stop processes (1 item)\n"}, {6, "==> stop processes (6 items)\n"}} {
		t.Run(tc.want, func(t *testing.T) {
			p, _, errb := textPrinter(t, 0)
			p.progress().PhaseStart("stop processes", tc.items)
			if errb.String() != tc.want {
				t.Errorf("got %q, want %q", errb.String(), tc.want)
			}
		})
	}
}
