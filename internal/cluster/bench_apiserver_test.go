package cluster

import (
	"context"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodereset/nodereset/internal/cluster/clustertest"
)

// BenchmarkDrain110: drain of a Ready node with 110 ReplicaSet pods on the
// real API server, the fake kubelet confirming deletions. kubectl is not
// available on this machine, so there is no kubectl drain figure to compare.
func BenchmarkDrain110(b *testing.B) {
	srv := cluster.Get(b)
	c := srv.Client(b)
	for i := range b.N {
		ns, node := "bench-"+strconv.Itoa(i), "bench-node-"+strconv.Itoa(i)
		clustertest.Namespace(b, c, ns)
		sim := clustertest.NewSim(b, c)
		clustertest.CreateNode(b, c, clustertest.NodeSpec{Name: node, Ready: true})
		sim.Run(node)
		lbl := map[string]string{"app": "web"}
		rs := clustertest.ReplicaSet(b, c, ns, "web", 110, lbl, "")
		pods := make([]*corev1.Pod, 0, 110)
		for j := range 110 {
			pods = append(pods, clustertest.Owned(clustertest.PodSpec(ns, "web-"+strconv.Itoa(j), node, lbl), "ReplicaSet", rs.Name, string(rs.UID)))
		}
		clustertest.CreatePods(b, c, pods...)
		o := testOptions(node, ModeDrain)
		o.PollInterval = 250 * time.Millisecond
		r, err := New(c, "bench", o)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		p, err := r.Plan(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		rep, err := r.Apply(context.Background(), p)
		took := time.Since(start)
		b.StopTimer()
		if err != nil || rep.Drain.Gone != 110 {
			b.Fatalf("drain: %v %+v", err, rep.Drain)
		}
		b.ReportMetric(took.Seconds(), "s/drain110")
		b.Logf("drain of 110 pods: %s (plan + cordon + evict + wait for the kubelet)", took.Round(time.Millisecond))
	}
}
