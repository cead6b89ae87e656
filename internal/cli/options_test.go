package cli

import (
	"strings"
	"testing"
	"time"
)

// TestOptionValues: values the kinds would silently replace by their
// defaults are refused (exit 2, nothing discovered); --term-timeout 0
// means SIGKILL at once, not the default.
func TestOptionValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" = accepted
	}{
		{[]string{"--parallel", "0"}, "--parallel 0: must be at least 1"},
		{[]string{"--parallel", "-3"}, "--parallel -3: must be at least 1"},
		{[]string{"--term-timeout", "-1s"}, "--term-timeout -1s: must not be negative"},
		{[]string{"--kill-timeout", "0s"}, "--kill-timeout 0s: must be positive"},
		{[]string{"--stop-timeout", "0s"}, "--stop-timeout 0s: must be positive"},
		{[]string{"--grace", "0s"}, "--grace 0s: must be positive"},
		{[]string{"--grace", "-2s"}, "--grace -2s: must not be negative"},
		{[]string{"--term-timeout", "0"}, ""},
		{[]string{"--parallel", "1", "--grace", "1s", "--kill-timeout", "1ms"}, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			g := &globalOptions{}
			cmd := newPlanCommand(g, Streams{})
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			err := g.validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
			// Refused before the host is looked at: the root does not exist.
			code, _, stderr := runCLI(t, append([]string{"plan", "--host-root", "/nonexistent-nodereset-root"}, tc.args...)...)
			if code != ExitError || !strings.Contains(stderr, tc.want) {
				t.Errorf("plan %v: exit %d, stderr %q", tc.args, code, stderr)
			}
		})
	}
	g := &globalOptions{termTimeout: 0, parallel: 1}
	if o := g.kindOptions(); o.TermTimeout <= 0 || o.TermTimeout > time.Millisecond {
		t.Errorf("--term-timeout 0 reaches the process kind as %v, which reads <= 0 as its 10s default", o.TermTimeout)
	}
}

// TestApplyOnlyFlagsHidden: plan and verify accept reset's apply-only
// flags (one command line works for all three) but list them only in
// reset's help.
func TestApplyOnlyFlagsHidden(t *testing.T) {
	for _, cmd := range []string{"plan", "verify", "reset"} {
		t.Run(cmd, func(t *testing.T) {
			code, out, stderr := runCLI(t, cmd, "--help", "--grace", "5s", "--parallel", "2", "--lazy-unmount")
			if code != ExitOK {
				t.Fatalf("%s --help with apply-only flags: exit %d %s", cmd, code, stderr)
			}
			for _, f := range applyOnlyFlags {
				if shown := strings.Contains(out, "--"+f+" "); shown != (cmd == "reset") {
					t.Errorf("%s --help: --%s shown %v", cmd, f, shown)
				}
			}
			if !strings.Contains(out, "--profile") {
				t.Errorf("%s --help lost the plan-changing flags:\n%s", cmd, out)
			}
		})
	}
}
