package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/nodereset/nodereset/internal/cluster"
	"github.com/nodereset/nodereset/internal/rancher"
)

// clusterOptions are the flags of drain and remove. The kubectl connection
// flags (--kubeconfig, --context, …) are bound on these commands only.
type clusterOptions struct {
	kube      *genericclioptions.ConfigFlags
	o         cluster.Options
	onTimeout string
	dryRun    dryRunFlag

	etcdCA, etcdCert, etcdKey string
	allowQuorumLoss           bool

	// rancher is set for remove: the node's record in Rancher's local
	// cluster, with --rancher-kubeconfig.
	rancher *rancherOptions
}

func newDrainCommand(g *globalOptions, s Streams) *cobra.Command {
	return newClusterCommand(g, s, cluster.ModeDrain, "drain NODE", "Cordon the node and evict its pods; never hangs on a dead node",
		`Resolve the Node, cordon it and evict its pods through the eviction API, so
that PodDisruptionBudgets are respected. DaemonSet and mirror (static) pods are
left to the node reset; finished pods are ignored; critical pods go last. On
every refusal (429) the budget is named with what it needs.

The whole drain is bounded by --drain-timeout; --on-timeout says what then
(fail, force-delete the remaining pods past their budgets, or skip them). On a
node that is unreachable (Ready not True for longer than --unreachable-after)
the kubelet cannot confirm deletions: pods get a short grace and are not waited
for. With --node-is-down the Node is tainted node.kubernetes.io/out-of-service
so that its volumes are detached; the drain then waits, bounded, for the
node's VolumeAttachments.

Exit codes: 0 done; 1 a step failed (see the report); 2 could not run (unknown
node, unreachable API server, missing permission, pods needing a flag) and
nothing was changed.`)
}

func newRemoveCommand(g *globalOptions, s Streams) *cobra.Command {
	return newClusterCommand(g, s, cluster.ModeRemove, "remove NODE", "Drain the node, remove its etcd member and delete the Node",
		`Everything 'nodereset drain' does, then remove the node's etcd member (kubeadm
stacked etcd: through another healthy member, refusing a removal that loses
quorum unless --allow-quorum-loss; K3s and RKE2 remove their own member when
the Node goes) and delete the Node, with retries.

The Node is not deleted while it is Ready and its kubelet still renews its
Lease: it would re-register. Reset the host first ('nodereset reset' on it) and
run remove again, or pass --ignore-kubelet.

With --rancher-kubeconfig (Rancher's local cluster) the node's Rancher record
goes too: the nodes.management.cattle.io record of its cluster (found by the
downstream server's endpoint, or --rancher-cluster) matched by name and
providerID, never by name alone, is deleted once the Node is gone. A node a
Cluster API Machine owns (Rancher-provisioned RKE2/K3s) is removed through the
Machine instead: nodereset deletes the Machine and waits, bounded by
--record-timeout, for Cluster API to drain and delete the Node. Both plans,
and the permissions they need there, are checked before anything changes.

Exit codes as for drain.`)
}

func newClusterCommand(g *globalOptions, s Streams, mode cluster.Mode, use, short, long string) *cobra.Command {
	co := &clusterOptions{kube: genericclioptions.NewConfigFlags(true), o: cluster.Defaults()}
	co.o.Mode = mode
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long,
		Example: "  nodereset " + string(mode) + " worker-3 --dry-run\n  nodereset " + string(mode) + " worker-3 --delete-emptydir-data --drain-timeout 10m --on-timeout force-delete",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			co.o.Node = args[0]
			return runCluster(cmd.Context(), g, co, s)
		},
	}
	f := cmd.Flags()
	bindKubeFlags(cmd, co.kube)
	o := &co.o
	bindDryRun(cmd, &co.dryRun, "print the plan and change nothing in the cluster")
	f.BoolVar(&o.DeleteEmptyDirData, "delete-emptydir-data", false, "evict pods with emptyDir volumes (their data is lost)")
	f.BoolVar(&o.Force, "force", false, "evict pods that no controller manages (they are not recreated); kubectl drain's --force")
	f.IntVar(&o.GracePeriodSeconds, "grace-period", o.GracePeriodSeconds, "seconds each pod gets to terminate; -1 uses the pod's own")
	f.DurationVar(&o.DrainTimeout, "drain-timeout", o.DrainTimeout, "bound on the whole drain")
	f.StringVar(&co.onTimeout, "on-timeout", string(o.OnTimeout), "when the drain times out: fail, force-delete (past PodDisruptionBudgets) or skip")
	f.DurationVar(&o.EvictRetryDelay, "evict-retry-delay", o.EvictRetryDelay, "pause before retrying an eviction a PodDisruptionBudget refused")
	f.DurationVar(&o.UnreachableAfter, "unreachable-after", o.UnreachableAfter, "a node not Ready (or without Lease renewal) for longer is unreachable: deletions are not waited for")
	f.DurationVar(&o.UnreachableGrace, "unreachable-grace", o.UnreachableGrace, "grace period of pods evicted from an unreachable node")
	f.BoolVar(&o.NodeIsDown, "node-is-down", false, "the machine is off: taint the Node "+cluster.TaintOutOfService+" so its volumes are detached")
	f.DurationVar(&o.VolumeDetachTimeout, "volume-detach-timeout", o.VolumeDetachTimeout, "bound on the wait for the node's VolumeAttachments to go")
	_ = cmd.RegisterFlagCompletionFunc("on-timeout", cobra.FixedCompletions([]string{"fail", "force-delete", "skip"}, cobra.ShellCompDirectiveNoFileComp))
	if mode == cluster.ModeRemove {
		f.BoolVar(&o.IgnoreKubelet, "ignore-kubelet", false, "delete the Node although its kubelet still posts status (it may re-register)")
		f.DurationVar(&o.DeleteTimeout, "delete-timeout", o.DeleteTimeout, "bound on the Node delete, its retries and its finalizers")
		f.StringVar(&co.etcdCA, "etcd-cacert", "", "etcd client CA (default: kubeadm's /etc/kubernetes/pki/etcd/ca.crt when present)")
		f.StringVar(&co.etcdCert, "etcd-cert", "", "etcd client certificate (default: kubeadm's healthcheck-client.crt)")
		f.StringVar(&co.etcdKey, "etcd-key", "", "etcd client key (default: kubeadm's healthcheck-client.key)")
		f.BoolVar(&co.allowQuorumLoss, "allow-quorum-loss", false, "remove the etcd member even if the remaining members would have no quorum")
		// kubectl's --cluster is bound here already: Rancher's is --rancher-cluster.
		co.rancher = &rancherOptions{records: rancher.DefaultRecordOptions()}
		co.rancher.bindRancher(cmd, "rancher-cluster")
	}
	return cmd
}

// clusterResult is the JSON output of drain and remove: one object.
type clusterResult struct {
	Plan    *cluster.Plan   `json:"plan"`
	Report  *cluster.Report `json:"report,omitempty"`
	Rancher *rancherResult  `json:"rancher,omitempty"`
}

func runCluster(ctx context.Context, g *globalOptions, co *clusterOptions, s Streams) error {
	pr, err := newPrinter(s.Out, s.Err, g.output, g.verbosity)
	if err != nil {
		return err
	}
	dryRun, err := co.dryRun.on(s.Err)
	if err != nil {
		return withCode(ExitError, err)
	}
	ot, err := cluster.ParseOnTimeout(co.onTimeout)
	if err != nil {
		return withCode(ExitError, err)
	}
	co.o.OnTimeout = ot
	d, err := downstreamClients(co.kube)
	if err != nil {
		return withCode(ExitError, err)
	}
	co.o.Log = newLogger(s.Err, g.verbosity)
	co.o.Observer = newClusterProgress(s.Err, pr.data)
	if co.o.Mode == cluster.ModeRemove {
		co.o.Etcd = etcdPlanner{co: co, hostRoot: g.hostRoot}
	}
	r, err := cluster.New(d.Client, d.Server, co.o)
	if err != nil {
		return withCode(ExitError, err)
	}
	p, err := r.Plan(ctx)
	if err != nil {
		return withCode(ExitError, err)
	}
	// Planned, with the permissions to change them, before anything
	// changes: a wrong --rancher-kubeconfig must not leave a removed Node
	// whose record nodereset then cannot delete.
	var records *rancherRecords
	if co.rancher != nil && co.rancher.rancherKubeconfig != "" {
		if records, err = planRancherRecords(ctx, co.rancher, co.kube, d, p.Node); err != nil {
			return withCode(ExitError, err)
		}
	}
	res := clusterResult{Plan: p}
	if records != nil {
		res.Rancher = &rancherResult{Plan: records.plan}
	}
	if !pr.data {
		printClusterPlan(pr, p, records)
	}
	if dryRun {
		if pr.data {
			// The plan alone, as for the other dry runs; with records,
			// both plans.
			var v any = p
			if records != nil {
				v = res
			}
			pr.writeData(v)
		}
		return nil
	}
	failed := false
	if records == nil || !records.plan.OwnsRemoval() {
		rep, err := r.Apply(ctx, p)
		if rep == nil {
			return withCode(ExitError, err)
		}
		res.Report, failed = rep, err != nil || rep.Failed()
		if failed && records != nil {
			rep.Todo = append(rep.Todo, records.keptNote())
		}
		if !pr.data {
			printClusterReport(pr, rep)
		}
	}
	// After the Node delete; with a Cluster API Machine in its place (the
	// Machine's controller drains and deletes the Node).
	if records != nil && !failed {
		rep, err := records.apply(ctx)
		res.Rancher.Report, failed = rep, err != nil || rep.Failed()
		if !pr.data {
			printRancherReport(pr, "Rancher records in cluster "+records.plan.Cluster.ID, rep)
		}
	}
	if pr.data {
		pr.writeData(res)
	}
	return residue(failed)
}

func printClusterPlan(pr *printer, p *cluster.Plan, records *rancherRecords) {
	n := p.Node
	fmt.Fprintf(pr.out, "Plan: %s node %s (uid %s", p.Mode, n.Name, n.UID)
	if n.ProviderID != "" {
		fmt.Fprintf(pr.out, ", providerID %s", n.ProviderID)
	}
	roles := make([]string, len(n.Roles))
	for i, r := range n.Roles {
		roles[i] = string(r)
	}
	fmt.Fprintf(pr.out, ")\n  %s, distribution %s, Ready=%s, unreachable=%v\n", strings.Join(roles, "+"), n.Distribution, n.Ready, n.Unreachable)
	if records != nil && records.plan.OwnsRemoval() {
		fmt.Fprintf(pr.out, "  %s owns this node: nodereset runs none of these steps; Cluster API does once the Machine is deleted\n", records.plan.Machine.Object())
	}
	for _, st := range p.Steps {
		if st.Skip != "" {
			fmt.Fprintf(pr.out, "  - %-21s skip: %s\n", st.Name, st.Skip)
		} else {
			fmt.Fprintf(pr.out, "  - %-21s %s\n", st.Name, st.Action)
		}
	}
	for _, l := range p.Etcd {
		fmt.Fprintf(pr.out, "      etcd: %s\n", l)
	}
	for _, pn := range p.Evict {
		fmt.Fprintf(pr.out, "    evict   %s (%s)\n", pn.Pod, pn.Note)
	}
	for _, pn := range p.Left {
		fmt.Fprintf(pr.out, "    leave   %s (%s)\n", pn.Pod, pn.Note)
	}
	for _, pn := range p.Blocked {
		fmt.Fprintf(pr.out, "    BLOCKED %s (%s)\n", pn.Pod, pn.Note)
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(pr.out, "warning: %s\n", w)
	}
	if records != nil {
		printRancherRecords(pr, records)
	}
}

func printClusterReport(pr *printer, rep *cluster.Report) {
	rows := make([]reportRow, len(rep.Steps))
	for i, s := range rep.Steps {
		rows[i] = reportRow{string(s.Status), s.Name, s.Detail, s.Error}
	}
	pr.results(fmt.Sprintf("Report for %s %s", rep.Mode, rep.Node.Name), rows, rep.Todo)
}
