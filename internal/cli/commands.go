package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

func newPlanCommand(g *globalOptions, s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what reset would change, in order, and why; change nothing",
		Long: `Discover the Kubernetes-owned state on this host and print the plan: every item
reset would touch, grouped by phase in the order the phases run, with the reason
it is considered Kubernetes-owned. Nothing is changed.

With -o json (or yaml) the plan is one document; each item has kind, target (the
host-side path or name, without --host-root) and action.`,
		Example: `  nodereset plan
  nodereset plan -o json | jq '.phases[].items[] | select(.kind=="mount") | .target'
  nodereset plan --host-root /host     # from a privileged container`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ss, err := g.session(s.Out, s.Err)
			if err != nil {
				return err
			}
			p, err := buildPlan(cmd.Context(), ss)
			if p != nil {
				ss.print.plan(p)
			}
			if err == nil {
				printNextStep(ss.print, p, "To apply this plan, run `nodereset reset` with the same flags.")
			}
			return err
		},
	}
	g.bindHost(cmd)
	return cmd
}

func buildPlan(ctx context.Context, ss *session) (*plan.Plan, error) {
	p, err := engine.Plan(ctx, ss.env, ss.phases)
	p.Host = hostName(ss.env.Host)
	p.Profiles = strings.Split(ss.profile.Name, "+")
	p.Evidence = ss.profile.Evidence
	p.Warnings = append(slices.Clone(ss.profile.Warnings), p.Warnings...)
	if err != nil {
		return p, withCode(ExitError, fmt.Errorf("%w\nthe plan above is incomplete; nothing was changed", err))
	}
	return p, nil
}

type resetOptions struct {
	yes    bool
	dryRun bool
}

func newResetCommand(g *globalOptions, s Streams) *cobra.Command {
	o := &resetOptions{}
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Show the plan, ask, apply it, then verify",
		Long: `Build the same plan as 'nodereset plan', show it, ask for confirmation (type the
host name, or pass --yes), apply it phase by phase, then verify the host.

Precious state (/etc/kubernetes, etcd data) is moved into
<backup-dir>/<time>/ (a rename on one filesystem) unless --no-backup; every
item's outcome is journalled there in journal.jsonl, and the firewall (rules,
nft tables, Kubernetes' ipsets) is saved in firewall/ before the first change.
A run that did not finish (killed, interrupted, or with failed items) is
finished by running reset again: it resumes in the same run directory. An
interrupted run (Ctrl-C) skips verify.

Exit 0: reset and verified clean. Exit 1: items failed, the run was
interrupted, or verify found residue. Exit 2: nothing was changed (or, when
the message says so, verify could not check).

Without a terminal on stdin, reset refuses to run without --yes.`,
		Example: `  nodereset reset --dry-run      # the plan, nothing changed
  nodereset reset                # asks for the host name
  nodereset reset --yes -o json  # unattended`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReset(cmd.Context(), g, o, s)
		},
	}
	cmd.Flags().BoolVarP(&o.yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	g.bindHost(cmd)
	return cmd
}

// result is reset's JSON output: one object.
type result struct {
	Plan   *plan.Plan           `json:"plan"`
	Report *engine.Report       `json:"report,omitempty"`
	Verify *engine.VerifyReport `json:"verify,omitempty"`
}

func runReset(ctx context.Context, g *globalOptions, o *resetOptions, s Streams) error {
	ss, err := g.session(s.Out, s.Err)
	if err != nil {
		return err
	}
	p, err := buildPlan(ctx, ss)
	if err != nil {
		ss.print.plan(p)
		return err
	}
	if o.dryRun {
		ss.print.plan(p)
		printNextStep(ss.print, p, "Dry run: nothing was changed. To apply this plan, run `nodereset reset` with the same flags, without --dry-run.")
		return nil
	}
	res := result{Plan: p}
	if !ss.print.data {
		// JSON goes out once, at the end, plan included.
		ss.print.plan(p)
	}
	if !p.Empty() {
		if err := confirm(o, s, p.Host); err != nil {
			return err
		}
		files, err := runFiles(p, ss.profile)
		if err != nil {
			return withCode(ExitError, err)
		}
		report, aerr := engine.Apply(ctx, ss.env, ss.phases, p, engine.ApplyOptions{
			BackupRoot: g.backupRoot(ss.env.Host), Backup: !g.noBackup, Observer: ss.print.progress(), Files: files,
		})
		res.Report = report
		if report == nil && ctx.Err() != nil {
			return withCode(ExitError, fmt.Errorf("interrupted before anything was changed (%w)", aerr))
		}
		if report == nil {
			return withCode(ExitError, aerr)
		}
		if !ss.print.data {
			ss.print.report(report)
		}
	}
	if ctx.Err() != nil {
		// Verify with a cancelled context could only say it could not look.
		if ss.print.data {
			ss.print.writeData(res)
		}
		return interrupted(res.Report)
	}
	vr, verr := engine.Verify(ctx, ss.env, ss.phases, ss.checks)
	res.Verify = vr
	if ss.print.data {
		ss.print.writeData(res)
	} else {
		ss.print.verify(vr)
	}
	switch {
	case res.Report != nil && len(res.Report.Failed()) > 0:
		return withCode(ExitResidue, fmt.Errorf("%d of %d items failed; see above and %s", len(res.Report.Failed()), len(res.Report.Results), hostRunDir(res.Report)))
	case verr != nil:
		return withCode(ExitError, verr)
	case !vr.Clean:
		return withCode(ExitResidue, errors.New("verify found residue after reset; run 'nodereset plan' to see it"))
	}
	return nil
}

// hostRunDir is the run directory as a host path, the form the operator
// passes to restore --firewall (JSON keeps both).
func hostRunDir(r *engine.Report) string {
	if r.HostRunDir != "" {
		return r.HostRunDir
	}
	return r.RunDir
}

// interrupted is reset's error when the signal context ended the run:
// the host is half reset, and running reset again resumes the same run.
func interrupted(r *engine.Report) error {
	if r == nil || !r.Interrupted {
		return withCode(ExitError, errors.New("interrupted before verify: run `nodereset verify` to check the host"))
	}
	journal := filepath.Join(hostRunDir(r), engine.JournalName)
	return withCode(ExitResidue, fmt.Errorf("interrupted: run reset again to finish (journal %s)", journal))
}

// printNextStep tells a text reader of a non-empty plan what to do next.
func printNextStep(p *printer, pl *plan.Plan, step string) {
	if p.data || pl == nil || pl.Empty() {
		return
	}
	fmt.Fprintf(p.out, "\n%s\n", step)
}

// errRefused is returned when the operator did not confirm.
var errRefused = errors.New("reset not confirmed; nothing was changed")

func confirm(o *resetOptions, s Streams, hostname string) error {
	if o.yes {
		return nil
	}
	f, ok := s.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return withCode(ExitError, errors.New("stdin is not a terminal: pass --yes to reset without confirmation (nothing was changed)"))
	}
	fmt.Fprintf(s.Err, "\nThis changes the host. Type the host name (%s) to reset it: ", hostname)
	line, err := bufio.NewReader(s.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return withCode(ExitError, err)
	}
	if strings.TrimSpace(line) != hostname {
		return withCode(ExitError, errRefused)
	}
	return nil
}

func newVerifyCommand(g *globalOptions, s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that the host is clean and ready to rejoin",
		Long: `Discover again and run the rejoin checks a join's preflight would trip on:
kubelet, etcd and apiserver ports in use, kubeadm's kubeconfig and CA files,
a non-empty static pod directory, leftover mounts and processes.

Exit 0: clean. Exit 1: residue found. Exit 2: something could not be checked.
With -o json: one object with "clean", "residue" (items) and "checks".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ss, err := g.session(s.Out, s.Err)
			if err != nil {
				return err
			}
			vr, err := engine.Verify(cmd.Context(), ss.env, ss.phases, ss.checks)
			if ss.print.data {
				ss.print.writeData(vr)
			} else {
				ss.print.verify(vr)
			}
			switch {
			case err != nil:
				return withCode(ExitError, err)
			case !vr.Clean:
				return withCode(ExitResidue, errSilent)
			}
			return nil
		},
	}
	g.bindHost(cmd)
	return cmd
}
