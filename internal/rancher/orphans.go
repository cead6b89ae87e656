package rancher

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nodereset/nodereset/internal/cluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RecordOptions configure orphans and the node-record hook of remove.
type RecordOptions struct {
	// ClusterID is the Rancher cluster; "" finds it from the downstream
	// server (FindCluster).
	ClusterID string
	// FinalizerGrace is how long a deleted management record is given to
	// Rancher's own controller before nodereset clears its stuck
	// user-node-remove_* finalizers (after confirming the Node is gone).
	FinalizerGrace time.Duration
	// RecordTimeout bounds each wait for a record to go; for a Cluster API
	// Machine it includes the drain and Node delete CAPI does.
	RecordTimeout time.Duration
	PollInterval  time.Duration
	Log           *slog.Logger
}

// DefaultRecordOptions are the ones the CLI starts from.
func DefaultRecordOptions() RecordOptions {
	return RecordOptions{FinalizerGrace: 10 * time.Second, RecordTimeout: 10 * time.Minute, PollInterval: 500 * time.Millisecond}
}

func (o *RecordOptions) validate() error {
	if o.FinalizerGrace <= 0 || o.RecordTimeout <= 0 || o.PollInterval <= 0 {
		return fmt.Errorf("finalizer grace %s, record timeout %s and poll interval %s must be positive", o.FinalizerGrace, o.RecordTimeout, o.PollInterval)
	}
	return nil
}

func (o *RecordOptions) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Orphan is a record whose node is gone.
type Orphan struct {
	Record Record `json:"record"`
	// Fix is what --fix does with it; "" means nothing (Note says why).
	Fix  string `json:"fix,omitempty"`
	Note string `json:"note,omitempty"`
}

// Conflict is a record naming a live Node whose providerID or UID differs:
// another machine took the name. It is left alone: deleting the record
// would let Rancher's user-node-remove finalizer delete the live Node by
// name.
type Conflict struct {
	Record Record `json:"record"`
	Why    string `json:"why"`
}

// OrphanPlan is the consistency check of one cluster's records.
type OrphanPlan struct {
	Cluster RancherCluster `json:"cluster"`
	Orphans []Orphan       `json:"orphans"`
	// Unrecorded are downstream Nodes no record matches.
	Unrecorded []NodeIdentity `json:"unrecorded"`
	Conflicts  []Conflict     `json:"conflicts,omitempty"`
	opts       RecordOptions
}

// Consistent reports whether every record has its node and every node a
// record.
func (p *OrphanPlan) Consistent() bool {
	return len(p.Orphans) == 0 && len(p.Unrecorded) == 0 && len(p.Conflicts) == 0
}

// PlanOrphans compares the cluster's records with the downstream Nodes;
// it changes nothing.
func PlanOrphans(ctx context.Context, m Management, d Downstream, o RecordOptions) (*OrphanPlan, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	rc, err := FindCluster(ctx, m, o.ClusterID, d.Server)
	if err != nil {
		return nil, err
	}
	recs, err := ListRecords(ctx, m, rc)
	if err != nil {
		return nil, err
	}
	nl, err := d.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, cluster.Classify(err, d.Server, "list nodes")
	}
	p := &OrphanPlan{Cluster: *rc, opts: o}
	recorded := map[string]bool{}
	for _, r := range recs {
		var conflict string
		found := false
		for _, n := range nl.Items {
			ok, _, c := Match(r.Node, NodeIdentity{Name: n.Name, UID: n.UID, ProviderID: n.Spec.ProviderID})
			if ok {
				found, recorded[n.Name] = true, true
				break
			}
			if c != "" {
				conflict = c
			}
		}
		switch {
		case found:
		case conflict != "":
			p.Conflicts = append(p.Conflicts, Conflict{Record: r, Why: fmt.Sprintf("names live node %s but records %s", r.Node.Name, conflict)})
		default:
			p.Orphans = append(p.Orphans, orphan(r))
		}
	}
	for _, n := range nl.Items {
		if !recorded[n.Name] {
			p.Unrecorded = append(p.Unrecorded, NodeIdentity{Name: n.Name, UID: n.UID, ProviderID: n.Spec.ProviderID})
		}
	}
	return p, nil
}

func orphan(r Record) Orphan {
	if r.Kind == RecordMachine {
		// Deleting a Machine makes Cluster API delete its infrastructure
		// (the VM): not a consistency fix to make on the operator's behalf.
		return Orphan{Record: r, Note: "its Node is gone; Cluster API replaces it or 'kubectl delete machine' on the local cluster also deletes the machine's infrastructure: not done by --fix"}
	}
	o := Orphan{Record: r, Fix: "delete"}
	if f := userNodeRemove(r.Finalizers); len(f) > 0 {
		o.Fix = fmt.Sprintf("delete; clear %v if still stuck after the finalizer grace", f)
	}
	if r.Deleting {
		o.Note = "already deleting: stuck on its finalizers"
	}
	return o
}

// ApplyOrphans deletes the orphaned management records (--fix). A record
// whose user-node-remove_* finalizer is still there after the grace gets
// it cleared, once the Node is confirmed gone again.
func ApplyOrphans(ctx context.Context, m Management, d Downstream, p *OrphanPlan) (*Report, error) {
	rep := &Report{}
	var errs []error
	for _, o := range p.Orphans {
		if o.Fix == "" {
			rep.Results = append(rep.Results, Result{Object: o.Record.Object(), Action: "none", Status: StatusSkipped, Detail: o.Note})
			rep.Remaining = append(rep.Remaining, o.Record.Object()+": "+o.Note)
			continue
		}
		if err := fixRecord(ctx, m, d, o.Record, p.opts, rep); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range p.Conflicts {
		rep.Remaining = append(rep.Remaining, c.Record.Object()+" "+c.Why+": left alone (check which machine is which in Rancher)")
	}
	for _, n := range p.Unrecorded {
		rep.Remaining = append(rep.Remaining, "node "+n.Name+" has no Rancher record: Rancher's node syncer creates it when the cluster agent runs")
	}
	return rep, joinErrs(errs)
}
