package cli

import (
	"context"
	"log/slog"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/nodereset/nodereset/internal/rancher"
)

// rancherOptions are the flags of the rancher subcommands: the downstream
// cluster through kubectl's connection flags, Rancher's local cluster
// through --rancher-kubeconfig.
type rancherOptions struct {
	kube              *genericclioptions.ConfigFlags
	rancherKubeconfig string
	rancherContext    string
	// clusterFlag is the name of the Rancher cluster ID flag: "cluster",
	// or "rancher-cluster" on remove, where kubectl's --cluster is bound.
	clusterFlag string
	dryRun      dryRunFlag
	fix         bool
	cleanup     rancher.CleanupOptions
	records     rancher.RecordOptions
}

// where names Rancher's local cluster in messages.
func (ro *rancherOptions) where() string {
	return "Rancher's local cluster (--rancher-kubeconfig " + ro.rancherKubeconfig + ")"
}

func newRancherCommand(g *globalOptions, s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rancher",
		Short: "Take Rancher out of an imported cluster; keep Rancher's node records consistent",
		Long: `Subcommands for clusters Rancher manages:
  cleanup   remove Rancher's agent, namespaces, RBAC, webhooks (and with --crds
            its CRDs) from an imported downstream cluster
  orphans   compare Rancher's node records with the cluster's Nodes; --fix
            deletes records whose node is gone`,
	}
	cmd.AddCommand(newRancherCleanupCommand(g, s), newRancherOrphansCommand(g, s))
	return cmd
}

// rancherRun is the body of a rancher subcommand, called with the
// downstream cluster's clients.
type rancherRun func(ctx context.Context, pr *printer, d rancher.Downstream, log *slog.Logger) error

// rancherSubcommand finishes cmd as a rancher subcommand: no arguments,
// kubectl's connection flags for the downstream cluster, and run called
// once the output format and those flags were checked.
func rancherSubcommand(g *globalOptions, s Streams, ro *rancherOptions, cmd *cobra.Command, run rancherRun) *cobra.Command {
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		pr, err := newPrinter(s.Out, s.Err, g.output, g.verbosity)
		if err != nil {
			return err
		}
		d, err := downstreamClients(ro.kube)
		if err != nil {
			return withCode(ExitError, err)
		}
		return run(cmd.Context(), pr, d, newLogger(s.Err, g.verbosity))
	}
	bindKubeFlags(cmd, ro.kube)
	return cmd
}

func newRancherCleanupCommand(g *globalOptions, s Streams) *cobra.Command {
	ro := &rancherOptions{kube: genericclioptions.NewConfigFlags(true), cleanup: rancher.DefaultCleanupOptions()}
	cmd := rancherSubcommand(g, s, ro, &cobra.Command{
		Use:   "cleanup",
		Short: "Remove Rancher from an imported downstream cluster",
		Long: `Plan, then remove what Rancher's agent left in the downstream cluster, as
Rancher's own cleanup does, with the cluster's API (no Job, nothing downloaded):
  - Rancher's webhook configurations (rancher.cattle.io);
  - Rancher's finalizers (controller.cattle.io/*), labels and annotations
    (field.cattle.io/projectId, cattle.io/*, lifecycle.cattle.io/*) from every
    namespace; other keys stay, whatever their text;
  - Roles, ClusterRoles and their bindings labelled cattle.io/creator=norman;
  - Rancher's namespaces (cattle-system, cattle-fleet-system,
    cattle-impersonation-system, cattle-prometheus, cattle-logging,
    cattle-project-p-*-monitoring), finalizers stripped, waited for;
  - with --crds, the CRDs of the cattle.io group and its subdomains.
Refused when the Rancher server runs in the cluster (cattle-system/rancher).

Exit codes: 0 done; 1 something failed or remains (see the report); 2 could
not run (refused, unreachable, missing permission) and nothing was changed.`,
		Example: "  nodereset rancher cleanup --dry-run\n  nodereset rancher cleanup --crds --context imported-prod",
	}, func(ctx context.Context, pr *printer, d rancher.Downstream, log *slog.Logger) error {
		ro.cleanup.Log = log
		return runRancherCleanup(ctx, pr, d, ro)
	})
	f := cmd.Flags()
	bindDryRun(cmd, &ro.dryRun, "print the plan and change nothing")
	f.BoolVar(&ro.cleanup.CRDs, "crds", false, "also delete Rancher's CRDs (group cattle.io or *.cattle.io) and all their objects")
	f.DurationVar(&ro.cleanup.NamespaceTimeout, "namespace-timeout", ro.cleanup.NamespaceTimeout, "bound on the wait for Rancher's deleted namespaces and CRDs to go")
	return cmd
}

func newRancherOrphansCommand(g *globalOptions, s Streams) *cobra.Command {
	ro := &rancherOptions{kube: genericclioptions.NewConfigFlags(true), records: rancher.DefaultRecordOptions()}
	// --cluster is the Rancher cluster here, as in Rancher's own tools;
	// kubeconfig's cluster is chosen with --context.
	ro.kube.ClusterName = nil
	cmd := rancherSubcommand(g, s, ro, &cobra.Command{
		Use:   "orphans",
		Short: "List Rancher node records whose node is gone, and nodes without a record",
		Long: `Compare the Rancher cluster's records (nodes.management.cattle.io in the
cluster's namespace, Cluster API Machines in its fleet workspace) with the
downstream cluster's Nodes, matched by name, providerID and UID (never by name
alone). The Rancher cluster is --cluster, or the one whose API endpoint is the
downstream server.

With --fix, management records whose node is gone are deleted; a record still
held by a user-node-remove_* finalizer after --finalizer-grace has that
finalizer cleared, once the Node is confirmed gone again. Machines are only
listed: deleting one deletes its infrastructure. A record naming a live node
of another providerID or UID is left alone and reported.

Exit codes: 0 consistent (or fixed); 1 inconsistencies remain; 2 could not run.`,
		Example: "  nodereset rancher orphans --rancher-kubeconfig local.yaml\n  nodereset rancher orphans --rancher-kubeconfig local.yaml --cluster c-7xk2q --fix",
	}, func(ctx context.Context, pr *printer, d rancher.Downstream, log *slog.Logger) error {
		ro.records.Log = log
		return runRancherOrphans(ctx, pr, d, ro)
	})
	ro.bindRancher(cmd, "cluster")
	cmd.Flags().BoolVar(&ro.fix, "fix", false, "delete orphaned management records")
	return cmd
}

// bindRancher adds the flags naming Rancher's local cluster and the record
// waits; the remove command binds them too, with clusterFlag
// "rancher-cluster" since kubectl's --cluster is taken there.
func (ro *rancherOptions) bindRancher(cmd *cobra.Command, clusterFlag string) {
	ro.clusterFlag = clusterFlag
	f := cmd.Flags()
	f.StringVar(&ro.rancherKubeconfig, "rancher-kubeconfig", "", "kubeconfig of Rancher's local cluster, where its records live")
	f.StringVar(&ro.rancherContext, "rancher-context", "", "context in --rancher-kubeconfig (default: its current one)")
	f.StringVar(&ro.records.ClusterID, clusterFlag, "", "Rancher cluster ID (c-xxxxx); default: the one whose API endpoint is the downstream server")
	f.DurationVar(&ro.records.FinalizerGrace, "finalizer-grace", ro.records.FinalizerGrace, "how long Rancher may finish a deleted record before its user-node-remove finalizer is cleared")
	f.DurationVar(&ro.records.RecordTimeout, "record-timeout", ro.records.RecordTimeout, "bound on each wait for a record (or a Cluster API Machine) to go")
	_ = cmd.MarkFlagFilename("rancher-kubeconfig")
}

func runRancherCleanup(ctx context.Context, pr *printer, d rancher.Downstream, ro *rancherOptions) error {
	dry, err := ro.dryRun.on(pr.err)
	if err != nil {
		return withCode(ExitError, err)
	}
	p, err := rancher.PlanCleanup(ctx, d, ro.cleanup)
	if err != nil {
		return withCode(ExitError, err)
	}
	if dry || !pr.data {
		printCleanupPlan(pr, p)
	}
	if dry {
		return nil
	}
	rep, err := rancher.ApplyCleanup(ctx, d, p)
	return finishRancher(pr, p, rep, err)
}

func runRancherOrphans(ctx context.Context, pr *printer, d rancher.Downstream, ro *rancherOptions) error {
	m, _, err := managementClient(ro)
	if err != nil {
		return withCode(ExitError, err)
	}
	p, err := rancher.PlanOrphans(ctx, m, d, ro.records)
	if err != nil {
		return withCode(ExitError, explainManagement(err, ro, m.Server))
	}
	if !ro.fix || !pr.data {
		printOrphans(pr, p)
	}
	if !ro.fix {
		if !p.Consistent() {
			return withCode(ExitResidue, errSilent)
		}
		return nil
	}
	rep, err := rancher.ApplyOrphans(ctx, m, d, p)
	return finishRancher(pr, p, rep, err)
}

// finishRancher prints the report and decides the exit code.
func finishRancher(pr *printer, plan any, rep *rancher.Report, err error) error {
	if pr.data {
		pr.writeData(struct {
			Plan   any             `json:"plan"`
			Report *rancher.Report `json:"report"`
		}{plan, rep})
	} else {
		printRancherReport(pr, "Report", rep)
	}
	return residue(err != nil || rep.Failed())
}

// residue is the exit of a run whose report was printed: ExitResidue when
// something failed or remains.
func residue(failed bool) error {
	if failed {
		return withCode(ExitResidue, errSilent)
	}
	return nil
}
