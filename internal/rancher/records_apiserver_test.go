package rancher

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/nodereset/nodereset/internal/cluster/clustertest"
)

// records creates the downstream Nodes and the management records;
// node-b is deleted with kubectl afterwards and its record deleted too
// (Rancher's UI "delete"): stuck on its finalizers, the seed's case.
func records(t *testing.T, ds, ls *clustertest.Server) map[string]string {
	t.Helper()
	c := ds.Client(t)
	uids := map[string]string{}
	for _, n := range []string{"node-a", "node-b", "node-c", "node-d", "node-m"} {
		uids[strings.ToUpper(strings.ReplaceAll(n, "-", "_"))+"_UID"] = string(clustertest.CreateNode(t, c, clustertest.NodeSpec{Name: n, Ready: true}).UID)
	}
	ls.Apply(t, []byte(os.Expand(string(read(t, "records.yaml")), func(k string) string { return uids[k] })))
	ctx := context.Background()
	must(t, c.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{}))
	must(t, ls.Dynamic(t).Resource(NodeGVR).Namespace("c-imp01").Delete(ctx, "m-bbb", metav1.DeleteOptions{}))
	return uids
}

func rv(t *testing.T, d dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) string {
	t.Helper()
	o, err := d.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if isGone(t, err) {
		return "gone"
	}
	return o.GetResourceVersion()
}

func TestOrphansAndNodeRecords(t *testing.T) {
	ds, ls := setup.get(t)
	uids := records(t, ds, ls)
	ctx := context.Background()
	m, d := management(t, ls), downstream(t, ds, clustertest.AdminToken)
	dyn := ls.Dynamic(t)
	o := DefaultRecordOptions()
	o.FinalizerGrace, o.RecordTimeout, o.PollInterval = 300*time.Millisecond, 10*time.Second, 50*time.Millisecond
	// Rancher's node controller drops its own finalizer from the deleting
	// record; its user-node-remove handler is what is stuck (the Node is gone).
	clustertest.Finalizer(t, ls.Dynamic(t), NodeGVR, "c-imp01", "m-bbb", "controller.cattle.io/node-controller", func() {})

	must(t, wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err := dyn.Resource(NodeGVR).Namespace("c-imp01").Get(ctx, "m-bbb", metav1.GetOptions{})
		return err == nil && slices.Equal(r.GetFinalizers(), []string{"user-node-remove_c-imp01"}), nil
	}))
	untouched := map[string]string{
		"m-aaa": rv(t, dyn, NodeGVR, "c-imp01", "m-aaa"), "m-ddd": rv(t, dyn, NodeGVR, "c-imp01", "m-ddd"),
		"m-bbb2": rv(t, dyn, NodeGVR, "c-other01", "m-bbb2"),
	}
	stuck := rv(t, dyn, NodeGVR, "c-imp01", "m-bbb")

	// No --cluster: found by its API endpoint, the downstream server.
	p, err := PlanOrphans(ctx, m, d, o)
	must(t, err)
	if p.Cluster.ID != "c-imp01" {
		t.Fatalf("cluster %q, want c-imp01", p.Cluster.ID)
	}
	if len(p.Orphans) != 1 || p.Orphans[0].Record.Name != "m-bbb" || !p.Orphans[0].Record.Deleting {
		t.Fatalf("orphans %+v, want the stuck m-bbb", p.Orphans)
	}
	if len(p.Conflicts) != 1 || p.Conflicts[0].Record.Name != "m-ddd" || !strings.Contains(p.Conflicts[0].Why, "fake://old-node-d") {
		t.Errorf("conflicts %+v, want m-ddd", p.Conflicts)
	}
	var unrec []string
	for _, n := range p.Unrecorded {
		unrec = append(unrec, n.Name)
	}
	if !slices.Equal(unrec, []string{"node-c", "node-d", "node-m"}) {
		t.Errorf("unrecorded %v", unrec)
	}
	if rv(t, dyn, NodeGVR, "c-imp01", "m-bbb") != stuck {
		t.Fatal("planning changed the stuck record")
	}

	// --fix: the stuck record goes; the other cluster's same-name record,
	// the live node's record and the conflicting one stay as they were.
	rep, err := ApplyOrphans(ctx, m, d, p)
	if err != nil {
		t.Fatalf("fix: %v", err)
	}
	if rv(t, dyn, NodeGVR, "c-imp01", "m-bbb") != "gone" {
		t.Fatal("m-bbb still there")
	}
	if len(rep.Results) != 1 || !strings.Contains(rep.Results[0].Detail, "user-node-remove_c-imp01") {
		t.Errorf("report %+v", rep.Results)
	}
	for name, v := range untouched {
		ns := map[string]string{"m-bbb2": "c-other01"}[name]
		if ns == "" {
			ns = "c-imp01"
		}
		if got := rv(t, dyn, NodeGVR, ns, name); got != v {
			t.Errorf("%s changed: %s -> %s", name, v, got)
		}
	}
	p2, err := PlanOrphans(ctx, m, d, o)
	must(t, err)
	if len(p2.Orphans) != 0 {
		t.Errorf("orphans after fix: %+v", p2.Orphans)
	}

	t.Run("remove of a node with a management record", func(t *testing.T) {
		np, err := PlanNode(ctx, m, ds.URL, NodeIdentity{Name: "node-a", UID: "x", ProviderID: "fake://node-a"}, o)
		must(t, err)
		if np.OwnsRemoval() || len(np.Records) != 1 || np.Records[0].Name != "m-aaa" || np.Evidence[0] != "name+providerID" {
			t.Fatalf("plan %+v", np)
		}
		// Called before the Node is gone: refused, record kept.
		_, err = ApplyNode(ctx, m, d, np)
		if _, ok := err.(interface{ Unwrap() []error }); !ok || !strings.Contains(err.Error(), "delete the Node first") {
			t.Errorf("err = %v", err)
		}
		must(t, ds.Client(t).CoreV1().Nodes().Delete(ctx, "node-a", metav1.DeleteOptions{}))
		if _, err := ApplyNode(ctx, m, d, np); err != nil {
			t.Fatal(err)
		}
		if rv(t, dyn, NodeGVR, "c-imp01", "m-aaa") != "gone" {
			t.Error("m-aaa still there")
		}
	})

	t.Run("remove of a Cluster API Machine-owned node", func(t *testing.T) {
		n, err := ds.Client(t).CoreV1().Nodes().Get(ctx, "node-m", metav1.GetOptions{})
		must(t, err)
		other := rv(t, dyn, MachineGVR, "fleet-default", "rke2-staging-pool1-y1")
		om := o
		om.ClusterID = "c-m-prov01"
		np, err := PlanNode(ctx, m, ds.URL, NodeIdentity{Name: n.Name, UID: n.UID, ProviderID: n.Spec.ProviderID}, om)
		must(t, err)
		if !np.OwnsRemoval() || np.Machine.Name != "rke2-prod-pool1-x1" || !strings.Contains(strings.Join(np.Describe(), "\n"), "owns this node") {
			t.Fatalf("plan %+v", np)
		}
		if uids["NODE_M_UID"] != string(n.UID) {
			t.Fatal("fixture UID")
		}
		// Cluster API's Machine controller: drains (not this test's
		// subject) and deletes the Node, then drops its finalizer.
		clustertest.Finalizer(t, ls.Dynamic(t), MachineGVR, "fleet-default", "rke2-prod-pool1-x1", "machine.cluster.x-k8s.io", func() {
			_ = ds.Client(t).CoreV1().Nodes().Delete(context.Background(), "node-m", metav1.DeleteOptions{})
		})
		rep, err := ApplyNode(ctx, m, d, np)
		if err != nil || rep.Failed() {
			t.Fatalf("apply: %v %+v", err, rep)
		}
		if _, err := ds.Client(t).CoreV1().Nodes().Get(ctx, "node-m", metav1.GetOptions{}); !isGone(t, err) {
			t.Error("node-m still there")
		}
		if got := rv(t, dyn, MachineGVR, "fleet-default", "rke2-staging-pool1-y1"); got != other {
			t.Errorf("the other cluster's Machine changed: %s -> %s", other, got)
		}
	})
}
