package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodereset/nodereset/internal/cluster"
	"github.com/nodereset/nodereset/internal/rancher"
)

// rancherOptions are the flags of the rancher subcommands: the downstream
// cluster through kubectl's connection flags, Rancher's local cluster
// through --rancher-kubeconfig.
type rancherOptions struct {
	kube              *genericclioptions.ConfigFlags
	rancherKubeconfig string
	rancherContext    string
	dryRun            bool
	fix               bool
	cleanup           rancher.CleanupOptions
	records           rancher.RecordOptions
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

func newRancherCleanupCommand(g *globalOptions, s Streams) *cobra.Command {
	ro := &rancherOptions{kube: genericclioptions.NewConfigFlags(true), cleanup: rancher.DefaultCleanupOptions()}
	cmd := &cobra.Command{
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
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRancherCleanup(cmd.Context(), g, ro, s)
		},
	}
	f := cmd.Flags()
	ro.kube.AddFlags(f)
	f.BoolVar(&ro.dryRun, "dry-run", false, "print the plan and change nothing")
	f.BoolVar(&ro.cleanup.CRDs, "crds", false, "also delete Rancher's CRDs (group cattle.io or *.cattle.io) and all their objects")
	f.DurationVar(&ro.cleanup.NamespaceTimeout, "namespace-timeout", ro.cleanup.NamespaceTimeout, "bound on the wait for Rancher's deleted namespaces and CRDs to go")
	return cmd
}

func newRancherOrphansCommand(g *globalOptions, s Streams) *cobra.Command {
	ro := &rancherOptions{kube: genericclioptions.NewConfigFlags(true), records: rancher.DefaultRecordOptions()}
	cmd := &cobra.Command{
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
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRancherOrphans(cmd.Context(), g, ro, s)
		},
	}
	// --cluster is the Rancher cluster here, as in Rancher's own tools;
	// kubeconfig's cluster is chosen with --context.
	ro.kube.ClusterName = nil
	f := cmd.Flags()
	ro.kube.AddFlags(f)
	ro.bindRancher(cmd, "cluster")
	f.BoolVar(&ro.fix, "fix", false, "delete orphaned management records")
	return cmd
}

// bindRancher adds the flags naming Rancher's local cluster and the record
// waits; the remove command binds them too, with clusterFlag
// "rancher-cluster" since kubectl's --cluster is taken there.
func (ro *rancherOptions) bindRancher(cmd *cobra.Command, clusterFlag string) {
	f := cmd.Flags()
	f.StringVar(&ro.rancherKubeconfig, "rancher-kubeconfig", "", "kubeconfig of Rancher's local cluster, where its records live")
	f.StringVar(&ro.rancherContext, "rancher-context", "", "context in --rancher-kubeconfig (default: its current one)")
	f.StringVar(&ro.records.ClusterID, clusterFlag, "", "Rancher cluster ID (c-xxxxx); default: the one whose API endpoint is the downstream server")
	f.DurationVar(&ro.records.FinalizerGrace, "finalizer-grace", ro.records.FinalizerGrace, "how long Rancher may finish a deleted record before its user-node-remove finalizer is cleared")
	f.DurationVar(&ro.records.RecordTimeout, "record-timeout", ro.records.RecordTimeout, "bound on each wait for a record (or a Cluster API Machine) to go")
	_ = cmd.MarkFlagFilename("rancher-kubeconfig")
}

// tuned sets the client limits the cluster commands use.
func tuned(cfg *rest.Config) *rest.Config {
	cfg.QPS, cfg.Burst = 50, 100
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return cfg
}

func downstreamClients(kube *genericclioptions.ConfigFlags) (rancher.Downstream, error) {
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return rancher.Downstream{}, fmt.Errorf("kubeconfig: %w; nothing was changed", err)
	}
	tuned(cfg)
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return rancher.Downstream{}, err
	}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return rancher.Downstream{}, err
	}
	return rancher.Downstream{Client: c, Dynamic: d, Server: cfg.Host}, nil
}

// managementClient connects to Rancher's local cluster.
func managementClient(path, context string) (rancher.Management, error) {
	if path == "" {
		return rancher.Management{}, errors.New("--rancher-kubeconfig is required: the kubeconfig of Rancher's local cluster")
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: path},
		&clientcmd.ConfigOverrides{CurrentContext: context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return rancher.Management{}, fmt.Errorf("--rancher-kubeconfig %s: %w; nothing was changed", path, err)
	}
	d, err := dynamic.NewForConfig(tuned(cfg))
	if err != nil {
		return rancher.Management{}, err
	}
	return rancher.Management{Dynamic: d, Server: cfg.Host}, nil
}

func runRancherCleanup(ctx context.Context, g *globalOptions, ro *rancherOptions, s Streams) error {
	pr, err := rancherPrinter(g, s)
	if err != nil {
		return err
	}
	d, err := downstreamClients(ro.kube)
	if err != nil {
		return withCode(ExitError, err)
	}
	ro.cleanup.Log = newLogger(s.Err, g.verbosity)
	p, err := rancher.PlanCleanup(ctx, d, ro.cleanup)
	if err != nil {
		return withCode(ExitError, err)
	}
	if ro.dryRun || !pr.json {
		printCleanupPlan(pr, p)
	}
	if ro.dryRun {
		return nil
	}
	rep, err := rancher.ApplyCleanup(ctx, d, p)
	return finishRancher(pr, p, rep, err)
}

func runRancherOrphans(ctx context.Context, g *globalOptions, ro *rancherOptions, s Streams) error {
	pr, err := rancherPrinter(g, s)
	if err != nil {
		return err
	}
	d, err := downstreamClients(ro.kube)
	if err != nil {
		return withCode(ExitError, err)
	}
	m, err := managementClient(ro.rancherKubeconfig, ro.rancherContext)
	if err != nil {
		return withCode(ExitError, err)
	}
	ro.records.Log = newLogger(s.Err, g.verbosity)
	p, err := rancher.PlanOrphans(ctx, m, d, ro.records)
	if err != nil {
		return withCode(ExitError, err)
	}
	if !ro.fix || !pr.json {
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

func rancherPrinter(g *globalOptions, s Streams) (*printer, error) {
	if g.output != "text" && g.output != "json" {
		return nil, withCode(ExitError, fmt.Errorf("-o %q: use text or json", g.output))
	}
	return newPrinter(s.Out, s.Err, g.output, g.verbosity), nil
}

// finishRancher prints the report and decides the exit code.
func finishRancher(pr *printer, plan any, rep *rancher.Report, err error) error {
	if pr.json {
		pr.writeJSON(struct {
			Plan   any             `json:"plan"`
			Report *rancher.Report `json:"report"`
		}{plan, rep})
	} else {
		printRancherReport(pr, rep)
	}
	if err != nil || rep.Failed() {
		return withCode(ExitResidue, errSilent)
	}
	return nil
}

func printCleanupPlan(pr *printer, p *rancher.CleanupPlan) {
	if pr.json {
		pr.writeJSON(p)
		return
	}
	if len(p.Items) == 0 {
		fmt.Fprintf(pr.out, "Nothing of Rancher's found in %s.\n", p.Server)
		return
	}
	fmt.Fprintf(pr.out, "Plan: remove Rancher from %s: %d objects\n", p.Server, len(p.Items))
	for _, it := range p.Items {
		fmt.Fprintf(pr.out, "  %-6s %s (%s)\n", it.Action, it.Object(), it.Reason)
		for _, r := range it.Remove {
			fmt.Fprintf(pr.out, "           - %s\n", r)
		}
	}
}

func printOrphans(pr *printer, p *rancher.OrphanPlan) {
	if pr.json {
		pr.writeJSON(p)
		return
	}
	fmt.Fprintf(pr.out, "Rancher cluster %s (%s), endpoint %s\n", p.Cluster.ID, p.Cluster.DisplayName, p.Cluster.APIEndpoint)
	if p.Consistent() {
		fmt.Fprintln(pr.out, "  consistent: every record has its node and every node a record")
	}
	for _, o := range p.Orphans {
		line := fmt.Sprintf("  orphan     %s: node %s is gone", o.Record.Object(), o.Record.Node.Name)
		if o.Fix != "" {
			line += "; --fix: " + o.Fix
		}
		if o.Note != "" {
			line += " (" + o.Note + ")"
		}
		fmt.Fprintln(pr.out, line)
	}
	for _, c := range p.Conflicts {
		fmt.Fprintf(pr.out, "  conflict   %s %s: left alone\n", c.Record.Object(), c.Why)
	}
	for _, n := range p.Unrecorded {
		fmt.Fprintf(pr.out, "  unrecorded node %s (providerID %s)\n", n.Name, n.ProviderID)
	}
}

func printRancherReport(pr *printer, rep *rancher.Report) {
	fmt.Fprintln(pr.out, "\nReport:")
	for _, r := range rep.Results {
		msg := r.Detail
		if r.Error != "" {
			msg = r.Error
		}
		fmt.Fprintf(pr.out, "  %-7s %s: %s\n", r.Status, r.Object, msg)
	}
	pr.todo(rep.Remaining)
}

// RancherRecords is the hook of 'nodereset remove NODE --rancher-kubeconfig
// FILE': plan the node's Rancher records from the cluster plan's Node, print
// what will happen, and carry it out at the right moment.
type RancherRecords struct {
	m    rancher.Management
	d    rancher.Downstream
	Plan *rancher.NodePlan
}

// planRancherRecords is called by the remove command after cluster.Plan;
// nil, nil when no --rancher-kubeconfig was given.
func planRancherRecords(ctx context.Context, ro *rancherOptions, kube *genericclioptions.ConfigFlags, n cluster.NodeInfo) (*RancherRecords, error) {
	if ro.rancherKubeconfig == "" {
		return nil, nil
	}
	m, err := managementClient(ro.rancherKubeconfig, ro.rancherContext)
	if err != nil {
		return nil, err
	}
	d, err := downstreamClients(kube)
	if err != nil {
		return nil, err
	}
	p, err := rancher.PlanNode(ctx, m, d.Server, rancher.NodeIdentity{Name: n.Name, UID: types.UID(n.UID), ProviderID: n.ProviderID}, ro.records)
	if err != nil {
		return nil, err
	}
	return &RancherRecords{m: m, d: d, Plan: p}, nil
}

// Apply carries the records' part out: with a Cluster API Machine, instead
// of the drain and Node delete; otherwise after the Node delete.
func (r *RancherRecords) Apply(ctx context.Context) (*rancher.Report, error) {
	return rancher.ApplyNode(ctx, r.m, r.d, r.Plan)
}

func printRancherRecords(pr *printer, r *RancherRecords) {
	fmt.Fprintf(pr.out, "  Rancher cluster %s:\n", r.Plan.Cluster.ID)
	for _, l := range r.Plan.Describe() {
		fmt.Fprintf(pr.out, "      rancher: %s\n", strings.TrimSpace(l))
	}
}
