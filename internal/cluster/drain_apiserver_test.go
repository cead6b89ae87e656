package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodereset/nodereset/internal/cluster/clustertest"
)

// TestDrainReadyWorker: Deployment (ReplicaSet) pods under a budget that
// allows one at a time, a DaemonSet pod, a mirror pod, an unmanaged pod,
// an emptyDir pod, a finished pod and a critical pod on a Ready node.
func TestDrainReadyWorker(t *testing.T) {
	srv := cluster.Get(t)
	c := srv.Client(t)
	ns, node, spare := "drain-worker", "drain-worker-1", "drain-worker-spare"
	clustertest.Namespace(t, c, ns)
	sim := clustertest.NewSim(t, c)
	clustertest.CreateNode(t, c, clustertest.NodeSpec{Name: node, Ready: true})
	clustertest.CreateNode(t, c, clustertest.NodeSpec{Name: spare, Ready: true})
	sim.Run(node)
	sim.Run(spare)
	sim.Manage(ns)

	web := rsPods(t, c, ns, "web", node, 3, spare)
	pdb(t, c, ns, "web-one-at-a-time", 1, map[string]string{"app": "web"})
	ds := clustertest.DaemonSet(t, c, ns, "agent", map[string]string{"app": "agent"})
	dsPod := clustertest.Owned(clustertest.PodSpec(ns, "agent-x", node, map[string]string{"app": "agent"}), "DaemonSet", ds.Name, string(ds.UID))
	mirror := clustertest.PodSpec(ns, "static-x", node, nil)
	mirror.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "abc"}
	bare := clustertest.PodSpec(ns, "bare", node, nil)
	scratch := clustertest.PodSpec(ns, "scratch", node, nil)
	scratch.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	others := clustertest.CreatePods(t, c, dsPod, mirror, bare, scratch)
	dns := clustertest.ReplicaSet(t, c, ns, "dns", 1, map[string]string{"app": "dns"}, "")
	critPod := clustertest.PodSpec(ns, "critical", node, map[string]string{"app": "dns"})
	critPod.Spec.PriorityClassName = "system-cluster-critical"
	clustertest.CreatePods(t, c, clustertest.Owned(critPod, "ReplicaSet", dns.Name, string(dns.UID)))
	done := clustertest.PodSpec(ns, "done", node, nil)
	done = clustertest.CreatePods(t, c, done)[0]
	done.Status.Phase = corev1.PodSucceeded
	if _, err := c.CoreV1().Pods(ns).UpdateStatus(context.Background(), done, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBudget(t, c, ns, "web-one-at-a-time")

	t.Run("without flags nothing changes", func(t *testing.T) {
		_, _, err := run(t, c, testOptions(node, ModeDrain))
		if !isErr[*BlockedPodsError](err) || !strings.Contains(err.Error(), ns+"/bare") || !strings.Contains(err.Error(), ns+"/scratch") {
			t.Fatalf("want BlockedPodsError naming bare and scratch, got %v", err)
		}
		n, _ := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if n.Spec.Unschedulable {
			t.Fatal("node cordoned although the run was refused")
		}
	})
	t.Run("with --force --delete-emptydir-data", func(t *testing.T) {
		o := testOptions(node, ModeDrain)
		o.Force, o.DeleteEmptyDirData = true, true
		rec := &recorder{}
		o.Observer = rec
		r, _ := New(c, "test", o)
		p, err := r.Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if last := p.Evict[len(p.Evict)-1]; last.Pod != ns+"/critical" || !strings.Contains(last.Note, "critical") {
			t.Fatalf("critical pod not last in %+v", p.Evict)
		}
		b, _ := c.PolicyV1().PodDisruptionBudgets(ns).Get(context.Background(), "web-one-at-a-time", metav1.GetOptions{})
		t.Logf("budget before: %+v", b.Status)
		start := time.Now()
		rep, err := r.Apply(context.Background(), p)
		if err != nil {
			t.Fatalf("drain: %v\n%+v", err, rep)
		}
		t.Logf("drained in %s: %s", time.Since(start), step(t, rep, StepDrain).Detail)
		if rep.Drain.Gone != 6 || rep.Drain.Total != 6 {
			t.Fatalf("want 6/6 evicted (3 web, critical, bare, scratch), got %+v", rep.Drain)
		}
		for _, p := range web {
			if podExists(t, c, ns, p.Name) {
				t.Errorf("%s still there", p.Name)
			}
		}
		for _, name := range []string{others[0].Name, others[1].Name, "done"} {
			if !podExists(t, c, ns, name) {
				t.Errorf("%s was evicted; DaemonSet, mirror and finished pods must be left", name)
			}
		}
		if !rec.sawBlocked("PodDisruptionBudget " + ns + "/web-one-at-a-time") {
			t.Errorf("no 429 named the budget; blocked notes: %v", rec.blocked)
		}
		n, _ := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if !n.Spec.Unschedulable {
			t.Error("node not cordoned")
		}
		// A second run has nothing to evict.
		_, rep2, err := run(t, c, o)
		if err != nil || rep2.Drain.Total != 0 || step(t, rep2, StepCordon).Detail != "already cordoned" {
			t.Fatalf("second run: %v %+v", err, rep2)
		}
	})
}

// waitBudget waits until the harness computed the budget's status.
func waitBudget(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := c.PolicyV1().PodDisruptionBudgets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && b.Status.ObservedGeneration == b.Generation && b.Generation > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("budget %s/%s status not computed", ns, name)
}
