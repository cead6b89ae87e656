package rancher

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// NodePlan is what happens to a removed node's Rancher records.
type NodePlan struct {
	Cluster RancherCluster `json:"cluster"`
	Node    NodeIdentity   `json:"node"`
	// Records matched the Node, with the evidence.
	Records  []Record `json:"records"`
	Evidence []string `json:"evidence"`
	// Machine, when set, is the Cluster API Machine that owns the removal:
	// deleting it makes CAPI drain and delete the Node, so nodereset drives
	// the removal through it instead of deleting the Node behind its back.
	Machine *Record `json:"machine,omitempty"`
	// Ignored are same-name records of another identity, left alone.
	Ignored []Conflict `json:"ignored,omitempty"`
	opts    RecordOptions
}

// OwnsRemoval reports whether a Cluster API Machine removes the Node: the
// caller then skips its own drain and Node delete and calls ApplyNode.
func (p *NodePlan) OwnsRemoval() bool { return p.Machine != nil }

// Describe is the plan in lines, for the printed plan.
func (p *NodePlan) Describe() []string {
	var out []string
	if p.Machine != nil {
		out = append(out, fmt.Sprintf("%s owns this node: delete the Machine; Cluster API drains and deletes Node %s (wait up to %s)",
			p.Machine.Object(), p.Node.Name, p.opts.RecordTimeout))
	}
	for i, r := range p.Records {
		if r.Kind == RecordNode {
			out = append(out, fmt.Sprintf("delete %s once Node %s is gone (matched on %s; cluster %s)", r.Object(), p.Node.Name, p.Evidence[i], p.Cluster.ID))
		}
	}
	for _, c := range p.Ignored {
		out = append(out, fmt.Sprintf("leave %s: it %s", c.Record.Object(), c.Why))
	}
	if len(p.Records) == 0 {
		out = append(out, fmt.Sprintf("no Rancher record of node %s in cluster %s", p.Node.Name, p.Cluster.ID))
	}
	return out
}

// PlanNode finds the records of node in its Rancher cluster (only that
// cluster's: a same-name node elsewhere is never looked at); it changes
// nothing.
func PlanNode(ctx context.Context, m Management, downstream string, node NodeIdentity, o RecordOptions) (*NodePlan, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	rc, err := FindCluster(ctx, m, o.ClusterID, downstream)
	if err != nil {
		return nil, err
	}
	recs, err := ListRecords(ctx, m, rc)
	if err != nil {
		return nil, err
	}
	p := &NodePlan{Cluster: *rc, Node: node, opts: o}
	for _, r := range recs {
		ok, ev, conflict := Match(r.Node, node)
		switch {
		case ok:
			p.Records, p.Evidence = append(p.Records, r), append(p.Evidence, ev)
			if r.Kind == RecordMachine && p.Machine == nil {
				p.Machine = &p.Records[len(p.Records)-1]
			}
		case conflict != "":
			p.Ignored = append(p.Ignored, Conflict{Record: r, Why: "records " + conflict})
		}
	}
	if p.Machine != nil { // the slice may have grown since
		for i := range p.Records {
			if p.Records[i].Kind == RecordMachine {
				p.Machine = &p.Records[i]
				break
			}
		}
	}
	return p, nil
}

// ApplyNode carries out the plan. With a Machine it deletes the Machine
// and waits, bounded, for it and the Node to go (CAPI drains and deletes
// the Node; Rancher's node syncer then drops its management record). Else
// it is called after the Node was deleted, and deletes the management
// records like 'orphans --fix', confirming first that the Node is gone.
func ApplyNode(ctx context.Context, m Management, d Downstream, p *NodePlan) (*Report, error) {
	rep := &Report{}
	if p.Machine != nil {
		return rep, applyMachine(ctx, m, d, p, rep)
	}
	var errs []error
	for _, r := range p.Records {
		if err := fixRecord(ctx, m, d, r, p.opts, rep); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, joinErrs(errs)
}

func applyMachine(ctx context.Context, m Management, d Downstream, p *NodePlan, rep *Report) error {
	r := *p.Machine
	obj, act := r.Object(), "delete machine"
	uid := r.UID
	err := m.Dynamic.Resource(MachineGVR).Namespace(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return rep.add(obj, act, err, "")
	}
	// One deadline for both: CAPI deletes the Node before it lets the
	// Machine go.
	var machineGone, nodeGone bool
	werr := wait.PollUntilContextTimeout(ctx, p.opts.PollInterval, p.opts.RecordTimeout, true, func(ctx context.Context) (bool, error) {
		if !machineGone {
			machineGone = gone(ctx, m, r, p.opts.PollInterval, p.opts)
		}
		if !nodeGone {
			n, err := d.Client.CoreV1().Nodes().Get(ctx, p.Node.Name, metav1.GetOptions{})
			nodeGone = apierrors.IsNotFound(err) || (err == nil && n.UID != p.Node.UID)
		}
		return machineGone && nodeGone, nil
	})
	if werr != nil {
		if !machineGone {
			rep.Remaining = append(rep.Remaining, obj+" is still deleting: see its conditions (kubectl describe machine) on the local cluster")
		}
		if !nodeGone {
			rep.Remaining = append(rep.Remaining, "Node "+p.Node.Name+" is still in the downstream cluster: Cluster API has not deleted it yet")
		}
		return rep.add(obj, act, fmt.Errorf("not finished after %s: %w", p.opts.RecordTimeout, werr), "")
	}
	return rep.add(obj, act, nil, "Machine deleted; Cluster API drained and deleted Node "+p.Node.Name)
}
