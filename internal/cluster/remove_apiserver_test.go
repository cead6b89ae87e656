package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nodereset/nodereset/internal/cluster/clustertest"
)

// TestDrainBlockedByBudget: maxUnavailable 0 blocks every eviction; the
// drain must stop at its deadline, name the budget, and escalate per
// --on-timeout.
func TestDrainBlockedByBudget(t *testing.T) {
	srv := cluster.Get(t)
	c := srv.Client(t)
	sim := clustertest.NewSim(t, c)
	for _, tc := range []struct {
		on        OnTimeout
		wantErr   bool
		podsAfter bool
	}{
		{TimeoutFail, true, true},
		{TimeoutForceDelete, false, false},
		{TimeoutSkip, false, true},
	} {
		t.Run(string(tc.on), func(t *testing.T) {
			ns, node := "pdb-"+string(tc.on), "pdb-node-"+string(tc.on)
			clustertest.Namespace(t, c, ns)
			clustertest.CreateNode(t, c, clustertest.NodeSpec{Name: node, Ready: true})
			sim.Run(node)
			sim.Manage(ns)
			pods := rsPods(t, c, ns, "db", node, 2, "")
			pdb(t, c, ns, "db-never", 0, map[string]string{"app": "db"})
			waitBudget(t, c, ns, "db-never")
			o := testOptions(node, ModeDrain)
			o.DrainTimeout, o.OnTimeout = 2*time.Second, tc.on
			start := time.Now()
			_, rep, err := run(t, c, o)
			took := time.Since(start)
			if took > o.DrainTimeout+5*time.Second {
				t.Errorf("drain took %s, deadline %s", took, o.DrainTimeout)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				if !isErr[*DrainTimeoutError](err) || !strings.Contains(err.Error(), "PodDisruptionBudget "+ns+"/db-never allows no disruption now: needs 2 healthy pods, has 2") {
					t.Fatalf("error does not name the budget and its need: %v", err)
				}
			}
			for _, p := range pods {
				if got := podExists(t, c, ns, p.Name); got != tc.podsAfter {
					t.Errorf("pod %s exists=%v, want %v", p.Name, got, tc.podsAfter)
				}
			}
			if tc.on == TimeoutForceDelete && len(rep.Drain.ForceDeleted) != 2 {
				t.Errorf("force-deleted %v", rep.Drain.ForceDeleted)
			}
			if tc.on == TimeoutSkip && (len(rep.Drain.Remaining) != 2 || step(t, rep, StepVolumes).Status != StatusDone) {
				t.Errorf("skip: remaining %v, later steps %+v", rep.Drain.Remaining, rep.Steps)
			}
		})
	}
}

// TestRemoveNotReady: the kubelet is dead, so evicted pods never go; the
// remove must finish within its deadline, taint the node out of service
// with --node-is-down, wait for its VolumeAttachment and delete the Node.
func TestRemoveNotReady(t *testing.T) {
	srv := cluster.Get(t)
	c := srv.Client(t)
	ns, node := "notready", "notready-1"
	clustertest.Namespace(t, c, ns)
	clustertest.CreateNode(t, c, clustertest.NodeSpec{Name: node, NotReadyFor: 10 * time.Minute})
	rsPods(t, c, ns, "web", node, 3, "")
	va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "va-notready"},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: "csi.example.com", NodeName: node,
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-1")}}}
	if _, err := c.StorageV1().VolumeAttachments().Create(context.Background(), va, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Play the attach-detach controller: detach once the node is out of service.
	go func() {
		for range 100 {
			n, err := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
			if err == nil {
				for _, tn := range n.Spec.Taints {
					if tn.Key == TaintOutOfService {
						_ = c.StorageV1().VolumeAttachments().Delete(context.Background(), va.Name, metav1.DeleteOptions{})
						return
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	o := testOptions(node, ModeRemove)
	o.NodeIsDown = true
	start := time.Now()
	p, rep, err := run(t, c, o)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("remove: %v\n%+v", err, rep)
	}
	t.Logf("removed an unreachable node in %s: %+v", took, rep.Steps)
	if !p.Node.Unreachable || took > 15*time.Second {
		t.Fatalf("unreachable=%v took %s", p.Node.Unreachable, took)
	}
	if len(rep.Drain.NotWaited) != 3 || rep.Drain.Gone != 3 {
		t.Errorf("drain %+v", rep.Drain)
	}
	for _, name := range []string{StepCordon, StepDrain, StepOutOfService, StepVolumes, StepDelete} {
		if s := step(t, rep, name); s.Status != StatusDone {
			t.Errorf("step %s: %+v", name, s)
		}
	}
	if s := step(t, rep, StepEtcd); s.Status != StatusSkipped {
		t.Errorf("etcd step on a worker: %+v", s)
	}
	if _, err := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node still there: %v", err)
	}
	if !strings.Contains(strings.Join(rep.Todo, "\n"), "nodereset reset") {
		t.Errorf("todo does not say to reset the host: %v", rep.Todo)
	}
}

// TestRemoveKubeletPosting: a Node whose kubelet still posts is drained
// but not deleted; once the host is reset (the kubelet stops), a second
// remove deletes it.
func TestRemoveKubeletPosting(t *testing.T) {
	srv := cluster.Get(t)
	c := srv.Client(t)
	ns, node := "posting", "posting-1"
	clustertest.Namespace(t, c, ns)
	sim := clustertest.NewSim(t, c)
	clustertest.CreateNode(t, c, clustertest.NodeSpec{Name: node, Ready: true, LeaseDuration: time.Second})
	sim.Run(node)
	rsPods(t, c, ns, "web", node, 2, "")
	o := testOptions(node, ModeRemove)
	_, rep, err := run(t, c, o)
	if !isErr[*KubeletAliveError](err) {
		t.Fatalf("want KubeletAliveError, got %v", err)
	}
	if rep.Drain.Gone != 2 || step(t, rep, StepDelete).Status != StatusFailed {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(strings.Join(rep.Todo, "\n"), "run 'nodereset remove "+node+"' again") {
		t.Errorf("todo: %v", rep.Todo)
	}
	if _, err := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{}); err != nil {
		t.Fatalf("node deleted although its kubelet posts: %v", err)
	}
	sim.Stop(node) // the host was reset
	time.Sleep(1500 * time.Millisecond)
	_, rep, err = run(t, c, o)
	if err != nil || step(t, rep, StepDelete).Status != StatusDone {
		t.Fatalf("second remove: %v %+v", err, rep)
	}
}
