package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/nodereset/nodereset/internal/cluster"
	"github.com/nodereset/nodereset/internal/etcdmember"
	"github.com/nodereset/nodereset/internal/rancher"
	"github.com/nodereset/nodereset/pkg/host"
)

// clusterOptions are the flags of drain and remove. The kubectl connection
// flags (--kubeconfig, --context, …) are bound on these commands only.
type clusterOptions struct {
	kube      *genericclioptions.ConfigFlags
	o         cluster.Options
	onTimeout string
	dryRun    bool

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
	co.kube.AddFlags(f)
	o := &co.o
	f.BoolVar(&co.dryRun, "dry-run", false, "print the plan and change nothing in the cluster")
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

func runCluster(ctx context.Context, g *globalOptions, co *clusterOptions, s Streams) error {
	if g.output != "text" && g.output != "json" {
		return withCode(ExitError, fmt.Errorf("-o %q: use text or json", g.output))
	}
	ot, err := cluster.ParseOnTimeout(co.onTimeout)
	if err != nil {
		return withCode(ExitError, err)
	}
	co.o.OnTimeout = ot
	cfg, err := co.kube.ToRESTConfig()
	if err != nil {
		return withCode(ExitError, fmt.Errorf("kubeconfig: %w; nothing was changed", err))
	}
	// client-go's default 5 QPS would pace a 110-pod drain; the server's
	// priority and fairness still applies.
	cfg.QPS, cfg.Burst = 50, 100
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return withCode(ExitError, err)
	}
	pr := newPrinter(s.Out, s.Err, g.output, g.verbosity)
	co.o.Log = newLogger(s.Err, g.verbosity)
	co.o.Observer = newClusterProgress(s.Err, pr.json)
	if co.o.Mode == cluster.ModeRemove {
		co.o.Etcd = etcdPlanner{co: co, hostRoot: g.hostRoot}
	}
	r, err := cluster.New(c, cfg.Host, co.o)
	if err != nil {
		return withCode(ExitError, err)
	}
	p, err := r.Plan(ctx)
	if err != nil {
		return withCode(ExitError, err)
	}
	var records *RancherRecords
	if co.rancher != nil {
		if records, err = planRancherRecords(ctx, co.rancher, co.kube, p.Node); err != nil {
			return withCode(ExitError, err)
		}
	}
	if co.dryRun || !pr.json {
		printClusterPlan(pr, p)
		if records != nil && !pr.json {
			printRancherRecords(pr, records)
		}
	}
	if co.dryRun {
		return nil
	}
	if records != nil && records.Plan.OwnsRemoval() {
		// A Cluster API Machine drains and deletes its node itself: drive
		// the removal through it, not behind its back.
		return applyRancherRecords(ctx, pr, records)
	}
	rep, err := r.Apply(ctx, p)
	if rep == nil {
		return withCode(ExitError, err)
	}
	if pr.json {
		pr.writeJSON(struct {
			Plan   *cluster.Plan   `json:"plan"`
			Report *cluster.Report `json:"report"`
		}{p, rep})
	} else {
		printClusterReport(pr, rep)
	}
	if err != nil || rep.Failed() {
		return withCode(ExitResidue, errSilent)
	}
	if records != nil {
		return applyRancherRecords(ctx, pr, records)
	}
	return nil
}

// applyRancherRecords removes the node's record from Rancher's local
// cluster and reports it.
func applyRancherRecords(ctx context.Context, pr *printer, records *RancherRecords) error {
	rep, err := records.Apply(ctx)
	if rep == nil {
		return withCode(ExitError, err)
	}
	if pr.json {
		pr.writeJSON(rep)
	} else {
		printRancherReport(pr, rep)
	}
	if err != nil || rep.Failed() {
		return withCode(ExitResidue, errSilent)
	}
	return nil
}

func printClusterPlan(pr *printer, p *cluster.Plan) {
	if pr.json {
		pr.writeJSON(p)
		return
	}
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
}

func printClusterReport(pr *printer, rep *cluster.Report) {
	fmt.Fprintf(pr.out, "\nReport for %s %s:\n", rep.Mode, rep.Node.Name)
	for _, s := range rep.Steps {
		msg := s.Detail
		if s.Error != "" {
			msg = s.Error
		}
		fmt.Fprintf(pr.out, "  %-8s %-21s %s\n", s.Status, s.Name, msg)
	}
	pr.todo(rep.Todo)
}

// clusterProgress prints steps and drain progress to stderr: one updated
// line on a terminal, a line per change otherwise.
type clusterProgress struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	last string
}

func newClusterProgress(w io.Writer, quiet bool) cluster.Observer {
	if quiet {
		w = io.Discard
	}
	f, ok := w.(*os.File)
	return &clusterProgress{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (c *clusterProgress) Step(s cluster.StepResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty && c.last != "" {
		fmt.Fprintln(c.w)
		c.last = ""
	}
	if s.Status == cluster.StatusRunning {
		fmt.Fprintf(c.w, "==> %s\n", s.Name)
		return
	}
	msg := s.Detail
	if s.Error != "" {
		msg = s.Error
	}
	fmt.Fprintf(c.w, "    %s %s: %s\n", s.Name, s.Status, msg)
}

func (c *clusterProgress) Drain(p cluster.DrainProgress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := fmt.Sprintf("    pods gone %d/%d", p.Gone, p.Total)
	if len(p.Blocked) > 0 {
		line += fmt.Sprintf(", blocked %d: %s (%s)", len(p.Blocked), p.Blocked[0].Pod, p.Blocked[0].Note)
	}
	if line == c.last {
		return
	}
	c.last = line
	if c.tty {
		fmt.Fprintf(c.w, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(c.w, line)
}

// etcdPlanner adapts internal/etcdmember to cluster.EtcdPlanner.
type etcdPlanner struct {
	co       *clusterOptions
	hostRoot string
}

func (e etcdPlanner) PlanRemoval(ctx context.Context, t cluster.EtcdTarget) (cluster.EtcdRemoval, error) {
	o := etcdmember.Options{Endpoints: t.ClientURLs, CACert: e.co.etcdCA, Cert: e.co.etcdCert, Key: e.co.etcdKey, AllowQuorumLoss: e.co.allowQuorumLoss}
	if o.CACert == "" && o.Cert == "" && o.Key == "" {
		if h, err := host.New(e.hostRoot); err == nil {
			o.CACert, o.Cert, o.Key, _ = etcdmember.DefaultTLS(h)
		}
	}
	if len(o.Endpoints) == 0 {
		return nil, fmt.Errorf("no etcd client URLs found (no etcd static pod carries the kubeadm.kubernetes.io/etcd.advertise-client-urls annotation)")
	}
	rm, err := etcdmember.PlanRemoval(ctx, o, etcdmember.Target{Name: t.Name, PeerHosts: t.PeerHosts})
	if err != nil {
		return nil, err
	}
	return etcdRemoval{rm}, nil
}

type etcdRemoval struct{ rm *etcdmember.Removal }

func (e etcdRemoval) Describe() []string { return e.rm.Describe() }

func (e etcdRemoval) Apply(ctx context.Context) (string, error) {
	res, err := e.rm.Apply(ctx)
	if err != nil {
		return "", err
	}
	if res.AlreadyGone {
		return "member " + res.Member + " already gone", nil
	}
	return fmt.Sprintf("removed member %s through %s; members now %s, leader %s", res.Member, res.Via, strings.Join(res.Remaining, ", "), res.Leader), nil
}
