package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/nodereset/nodereset/internal/cluster"
	"github.com/nodereset/nodereset/internal/cluster/clustertest"
	"github.com/nodereset/nodereset/internal/rancher"
)

// rancherLocal plays Rancher's local cluster next to apiserver, the
// downstream one: two servers, so that a command reading a record through
// the wrong kubeconfig finds nothing and fails.
var rancherLocal clustertest.Shared

// TestRemoveWithRancher runs 'nodereset remove NODE --rancher-kubeconfig
// FILE' as an operator does, against a downstream and a Rancher local
// cluster.
func TestRemoveWithRancher(t *testing.T) {
	ds, ls := apiserver.Get(t), rancherLocal.Get(t)
	c, dyn := ds.Client(t), ls.Dynamic(t)
	ctx := context.Background()
	b, err := os.ReadFile("../rancher/testdata/local-crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ls.Apply(t, b)
	// Down for an hour: the Node may be deleted without a host reset.
	node := func(name string) string {
		return string(clustertest.CreateNode(t, c, clustertest.NodeSpec{Name: name, NotReadyFor: time.Hour}).UID)
	}
	for _, n := range []string{"rm-worker", "rm-stuck", "rm-denied", "rm-json"} {
		node(n)
	}
	vars := map[string]string{"DOWNSTREAM": ds.URL, "MACHINE_UID": node("rm-machine")}
	fixtures, err := os.ReadFile("testdata/remove-rancher-local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ls.Apply(t, []byte(os.Expand(string(fixtures), func(k string) string { return vars[k] })))
	grantRecordsReadOnly(t, ls)

	kc := ds.Kubeconfig(t, clustertest.AdminToken)
	local := ls.Kubeconfig(t, clustertest.AdminToken)
	// A quick removal of a node that is down; fast record waits.
	remove := func(node string, extra ...string) []string {
		return append([]string{"remove", node, "--kubeconfig", kc, "--unreachable-after", "1m", "--volume-detach-timeout", "5s",
			"--finalizer-grace", "200ms", "--record-timeout", "20s"}, extra...)
	}
	nodeGone := func(name string) bool {
		_, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return isNotFound(t, err)
	}
	survivors := map[string]string{
		"c-rm01/m-worker-old":  recordVersion(t, dyn, rancher.NodeGVR, "c-rm01", "m-worker-old"),
		"c-rmother/m-worker":   recordVersion(t, dyn, rancher.NodeGVR, "c-rmother", "m-worker"),
		"machine/rke2-rmstage": recordVersion(t, dyn, rancher.MachineGVR, "fleet-default", "rke2-rmstage-pool1-y1"),
	}

	t.Run("operator errors change nothing and say what to do", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "no-such-kubeconfig")
		for _, tc := range []struct {
			name       string
			kubeconfig string
			want       []string
		}{
			{"no such file", missing, []string{"--rancher-kubeconfig " + missing, "nothing was changed"}},
			{"unreachable Rancher", kubeconfigFor(t, "https://127.0.0.1:"+closedPort(t), "x"),
				[]string{"cannot reach Rancher's local cluster", "check --rancher-kubeconfig and --rancher-context", "nothing was changed"}},
			{"no access to Rancher's records", ds.Kubeconfig(t, clustertest.LimitedToken),
				[]string{"Rancher's local cluster (--rancher-kubeconfig", "nothing was changed"}},
			{"may read but not delete records", ls.Kubeconfig(t, clustertest.LimitedToken),
				[]string{"may not delete nodes.management.cattle.io in c-rm01", "--rancher-kubeconfig", "nothing was changed"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := versions(t, c, "rm-denied", "default")
				record := recordVersion(t, dyn, rancher.NodeGVR, "c-rm01", "m-denied")
				code, out, errOut := runCLI(t, remove("rm-denied", "--rancher-kubeconfig", tc.kubeconfig)...)
				if code != ExitError {
					t.Errorf("exit %d, want %d", code, ExitError)
				}
				for _, w := range tc.want {
					if !strings.Contains(errOut, w) {
						t.Errorf("stderr lacks %q", w)
					}
				}
				if strings.Contains(errOut, "check --kubeconfig, --context, --server") {
					t.Error("the message sends the operator to the downstream cluster's flags")
				}
				if t.Failed() || testing.Verbose() {
					t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
				}
				if after := versions(t, c, "rm-denied", "default"); !maps.Equal(before, after) {
					t.Errorf("the downstream node changed: %v -> %v", before, after)
				}
				if got := recordVersion(t, dyn, rancher.NodeGVR, "c-rm01", "m-denied"); got != record {
					t.Errorf("the record changed: %s -> %s", record, got)
				}
			})
		}
	})

	t.Run("node and its record", func(t *testing.T) {
		code, out, errOut := runCLI(t, remove("rm-worker", "--rancher-kubeconfig", local)...)
		for _, w := range []string{
			"rancher: delete nodes.management.cattle.io c-rm01/m-worker once Node rm-worker is gone (matched on name+providerID; cluster c-rm01)",
			"rancher: leave nodes.management.cattle.io c-rm01/m-worker-old: it records providerID fake://old-rm-worker",
			"done     delete node",
			"done     nodes.management.cattle.io c-rm01/m-worker:",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("stdout lacks %q", w)
			}
		}
		if code != ExitOK || t.Failed() {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !nodeGone("rm-worker") {
			t.Error("Node rm-worker still there")
		}
		if recordVersion(t, dyn, rancher.NodeGVR, "c-rm01", "m-worker") != "gone" {
			t.Error("record c-rm01/m-worker still there")
		}
	})

	t.Run("json: dry run changes nothing, then one object", func(t *testing.T) {
		var res struct {
			Plan    *cluster.Plan   `json:"plan"`
			Report  *cluster.Report `json:"report"`
			Rancher *struct {
				Plan   *rancher.NodePlan `json:"plan"`
				Report *rancher.Report   `json:"report"`
			} `json:"rancher"`
		}
		before := versions(t, c, "rm-json", "default")
		record := recordVersion(t, dyn, rancher.NodeGVR, "c-rm01", "m-json")
		code, out, errOut := runCLI(t, remove("rm-json", "--rancher-kubeconfig", local, "--dry-run", "-o", "json")...)
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != ExitOK {
			t.Fatalf("exit %d, want one JSON object: %v\n%s\n%s", code, err, out, errOut)
		}
		if res.Report != nil || res.Rancher == nil || len(res.Rancher.Plan.Records) != 1 || res.Rancher.Plan.Records[0].Name != "m-json" || res.Rancher.Report != nil {
			t.Errorf("dry run: %s", out)
		}
		if after := versions(t, c, "rm-json", "default"); !maps.Equal(before, after) || recordVersion(t, dyn, rancher.NodeGVR, "c-rm01", "m-json") != record {
			t.Errorf("the dry run changed the node (%v -> %v) or its record", before, after)
		}
		code, out, errOut = runCLI(t, remove("rm-json", "--rancher-kubeconfig", local, "-o", "json")...)
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != ExitOK {
			t.Fatalf("exit %d, want one JSON object: %v\n%s\n%s", code, err, out, errOut)
		}
		if res.Report == nil || res.Report.Failed() || res.Rancher.Report == nil || len(res.Rancher.Report.Results) != 1 ||
			res.Rancher.Report.Results[0].Status != rancher.StatusDone {
			t.Errorf("report: %s", out)
		}
		if !nodeGone("rm-json") || recordVersion(t, dyn, rancher.NodeGVR, "c-rm01", "m-json") != "gone" {
			t.Error("Node rm-json or its record still there")
		}
	})

	t.Run("Machine-owned node goes through its Machine", func(t *testing.T) {
		// Cluster API's Machine controller: on the Machine's delete it
		// deletes the Node, then lets the Machine go. What it saw of the
		// Node tells whether nodereset cordoned or deleted it itself.
		seen := make(chan string, 1)
		clustertest.Finalizer(t, dyn, rancher.MachineGVR, "fleet-default", "rke2-rm-pool1-x1", "machine.cluster.x-k8s.io", func() {
			n, err := c.CoreV1().Nodes().Get(context.Background(), "rm-machine", metav1.GetOptions{})
			state := "no Node"
			if err == nil {
				state = fmt.Sprintf("unschedulable=%v", n.Spec.Unschedulable)
			}
			select { // the first call only: a failed finalizer update calls again
			case seen <- state:
			default:
			}
			_ = c.CoreV1().Nodes().Delete(context.Background(), "rm-machine", metav1.DeleteOptions{})
		})
		code, out, errOut := runCLI(t, remove("rm-machine", "--rancher-kubeconfig", local, "--rancher-cluster", "c-m-rm02")...)
		for _, w := range []string{
			"machines.cluster.x-k8s.io fleet-default/rke2-rm-pool1-x1 owns this node",
			"done     machines.cluster.x-k8s.io fleet-default/rke2-rm-pool1-x1: Machine deleted; Cluster API drained and deleted Node rm-machine",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("stdout lacks %q", w)
			}
		}
		if strings.Contains(out, "Report for remove") {
			t.Error("nodereset ran its own steps on a node its Machine owns")
		}
		if code != ExitOK || t.Failed() || testing.Verbose() {
			t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		select {
		case s := <-seen:
			if s != "unschedulable=false" {
				t.Errorf("when the Machine was deleted the Node was %s: nodereset drained or deleted it behind Cluster API's back", s)
			}
		default:
			t.Error("the Machine controller never saw the Machine deleting")
		}
		if !nodeGone("rm-machine") {
			t.Error("Node rm-machine still there")
		}
		if recordVersion(t, dyn, rancher.MachineGVR, "fleet-default", "rke2-rm-pool1-x1") != "gone" {
			t.Error("Machine still there")
		}
	})

	t.Run("records of other identities survive", func(t *testing.T) {
		for k, v := range survivors {
			ns, name, _ := strings.Cut(k, "/")
			gvr := rancher.NodeGVR
			if ns == "machine" {
				ns, name, gvr = "fleet-default", "rke2-rmstage-pool1-y1", rancher.MachineGVR
			}
			if got := recordVersion(t, dyn, gvr, ns, name); got != v {
				t.Errorf("%s changed: resourceVersion %s -> %s", k, v, got)
			}
		}
	})

	t.Run("record stuck after the Node delete is reported with the way out", func(t *testing.T) {
		code, out, errOut := runCLI(t, remove("rm-stuck", "--rancher-kubeconfig", local, "--record-timeout", "1s")...)
		for _, w := range []string{
			"done     delete node",
			"failed   nodes.management.cattle.io c-rm01/m-stuck:",
			"Node rm-stuck is deleted from the cluster but Rancher still has its record",
			"nodereset rancher orphans --kubeconfig " + kc + " --rancher-kubeconfig " + local + " --cluster c-rm01 --fix",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("stdout lacks %q", w)
			}
		}
		if code != ExitResidue || t.Failed() {
			t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, ExitResidue, out, errOut)
		}
	})
}

// grantRecordsReadOnly lets LimitedUser read, but not change, Rancher's
// and Cluster API's records on the local cluster.
func grantRecordsReadOnly(t *testing.T, ls *clustertest.Server) {
	t.Helper()
	ctx := context.Background()
	c := ls.Client(t)
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "nodereset-test-records-readonly"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get", "list", "watch"},
			APIGroups: []string{"management.cattle.io", "provisioning.cattle.io", "cluster.x-k8s.io"}, Resources: []string{"*"}}}}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: clustertest.LimitedUser}}}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, bind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// kubeconfigFor writes a kubeconfig for server and token.
func kubeconfigFor(t *testing.T, server, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: t, cluster: {server: %q, insecure-skip-tls-verify: true}}]\n"+
		"users: [{name: u, user: {token: %q}}]\ncontexts: [{name: t, context: {cluster: t, user: u}}]\ncurrent-context: t\n", server, token)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// recordVersion is the object's resourceVersion, "gone" when NotFound.
func recordVersion(t *testing.T, d dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) string {
	t.Helper()
	o, err := d.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if isNotFound(t, err) {
		return "gone"
	}
	return o.GetResourceVersion()
}

func isNotFound(t *testing.T, err error) bool {
	t.Helper()
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err != nil
}
