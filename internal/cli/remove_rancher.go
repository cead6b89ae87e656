package cli

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/nodereset/nodereset/internal/cluster"
	"github.com/nodereset/nodereset/internal/rancher"
)

// rancherRecords is the part of 'nodereset remove NODE --rancher-kubeconfig
// FILE' in Rancher's local cluster: the node's records, planned from the
// cluster plan's Node, printed with it, and carried out after the Node
// delete (or, with a Cluster API Machine, in its place).
type rancherRecords struct {
	m    rancher.Management
	d    rancher.Downstream
	ro   *rancherOptions
	plan *rancher.NodePlan
	// orphans is the command that deletes the records later, for the
	// report when they outlive the Node.
	orphans string
}

// rancherResult is the records' part of remove's JSON output.
type rancherResult struct {
	Plan   *rancher.NodePlan `json:"plan"`
	Report *rancher.Report   `json:"report,omitempty"`
}

// planRancherRecords plans the node's records and checks that the user
// may carry the plan out; it changes nothing. Every error is about
// Rancher's local cluster and says so.
func planRancherRecords(ctx context.Context, ro *rancherOptions, kube *genericclioptions.ConfigFlags, d rancher.Downstream, n cluster.NodeInfo) (*rancherRecords, error) {
	m, authz, err := managementClient(ro)
	if err != nil {
		return nil, err
	}
	p, err := rancher.PlanNode(ctx, m, d.Server, rancher.NodeIdentity{Name: n.Name, UID: types.UID(n.UID), ProviderID: n.ProviderID}, ro.records)
	if err == nil {
		err = cluster.CheckAccess(ctx, authz, m.Server, needs(p))
	}
	if err != nil {
		return nil, explainManagementOnly(err, ro, m.Server)
	}
	return &rancherRecords{m: m, d: d, ro: ro, plan: p, orphans: orphansCommand(ro, kube, p.Cluster.ID)}, nil
}

// apply carries the records' part out. When a management record outlives
// the Node, the report says so and how to finish.
func (r *rancherRecords) apply(ctx context.Context) (*rancher.Report, error) {
	rep, err := rancher.ApplyNode(ctx, r.m, r.d, r.plan)
	if (err != nil || rep.Failed()) && !r.plan.OwnsRemoval() {
		rep.Remaining = append(rep.Remaining, fmt.Sprintf("Node %s is deleted from the cluster but Rancher still has its record: once the cause above is fixed, run '%s'",
			r.plan.Node.Name, r.orphans))
	}
	return rep, err
}

// keptNote is the line of the cluster report when the Node removal failed
// and the records were therefore left as they are.
func (r *rancherRecords) keptNote() string {
	return fmt.Sprintf("Rancher's records of node %s in cluster %s are kept, since the Node removal did not finish: run remove again once it is fixed", r.plan.Node.Name, r.plan.Cluster.ID)
}

func printRancherRecords(pr *printer, r *rancherRecords) {
	fmt.Fprintf(pr.out, "  Rancher cluster %s:\n", r.plan.Cluster.ID)
	for _, l := range r.plan.Describe() {
		fmt.Fprintf(pr.out, "      rancher: %s\n", strings.TrimSpace(l))
	}
}

// orphansCommand is the 'rancher orphans --fix' command line for the same
// two clusters.
func orphansCommand(ro *rancherOptions, kube *genericclioptions.ConfigFlags, clusterID string) string {
	args := []string{"nodereset rancher orphans"}
	for _, f := range []struct {
		name string
		v    *string
	}{{"--kubeconfig", kube.KubeConfig}, {"--context", kube.Context}, {"--rancher-kubeconfig", &ro.rancherKubeconfig}, {"--rancher-context", &ro.rancherContext}} {
		if f.v != nil && *f.v != "" {
			args = append(args, f.name+" "+*f.v)
		}
	}
	return strings.Join(append(args, "--cluster "+clusterID, "--fix"), " ")
}

// needs are the permissions on Rancher's local cluster that ApplyNode
// uses for plan p: the Machine's delete and the waits for it, or the
// management records' delete, finalizer update and waits. They are
// checked up front since ApplyNode runs after the Node delete.
func needs(p *rancher.NodePlan) []cluster.Access {
	if m := p.Machine; m != nil {
		return access(rancher.MachineGVR, m.Namespace, "get", "delete")
	}
	for _, r := range p.Records {
		// Every management record of a cluster is in its namespace.
		if r.Kind == rancher.RecordNode {
			return access(rancher.NodeGVR, r.Namespace, "get", "delete", "update")
		}
	}
	return nil
}

func access(gvr schema.GroupVersionResource, ns string, verbs ...string) []cluster.Access {
	out := make([]cluster.Access, len(verbs))
	for i, v := range verbs {
		out[i] = cluster.Access{Verb: v, Group: gvr.Group, Resource: gvr.Resource, Namespace: ns}
	}
	return out
}
