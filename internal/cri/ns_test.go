package cri

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	rt "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodereset/nodereset/internal/cri/critest"
	"github.com/nodereset/nodereset/internal/netns"
	"github.com/nodereset/nodereset/internal/procs"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

// kubelet-like pods: a Deployment pod on the pod network with two
// containers, a host-network DaemonSet pod and a static pod, and a sandbox
// some other CRI client made without the kubelet's labels.
func plantPods(t *testing.T, n *node) {
	t.Helper()
	ctx := context.Background()
	ds := map[string]string{LabelTemplateGeneration: "1", LabelRevisionHash: "5d8f7c9b", "k8s-app": "kube-proxy"}
	static := map[string]string{AnnotationConfigSource: "file", "kubernetes.io/config.hash": "abc", "kubernetes.io/config.seen": "2024-01-01T00:00:00Z"}
	pods := []critest.Pod{
		n.pod("default", "web-7d9f-x2x", 1, false, map[string]string{"pod-template-hash": "7d9f"}, nil, "app", "sidecar"),
		n.pod("kube-system", "kube-proxy-q8x", 2, true, ds, nil, "kube-proxy"),
		n.pod("kube-system", "etcd-node1", 3, true, map[string]string{"component": "etcd"}, static, "etcd"),
	}
	if _, err := n.ctrd.RunPods(ctx, pods, 3); err != nil {
		t.Fatal(err)
	}
	// Not the kubelet's: no io.kubernetes.pod.* labels.
	_, err := n.ctrd.RS.RunPodSandbox(ctx, &rt.RunPodSandboxRequest{Config: &rt.PodSandboxConfig{
		Metadata:     &rt.PodSandboxMetadata{Name: "foreign", Namespace: "other", Uid: "f0f0"},
		LogDirectory: filepath.Join(n.dir, "foreign"),
		Linux: &rt.LinuxPodSandboxConfig{CgroupParent: n.cgroup + "/foreign",
			SecurityContext: &rt.LinuxSandboxSecurityContext{NamespaceOptions: &rt.NamespaceOption{Network: rt.NamespaceMode_NODE}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.ctrd.RunDecoy(ctx, "default", "user-web", n.cgroup+"/user/decoy"); err != nil {
		t.Fatal(err)
	}
}

// TestRemovesKubeletPodsOnly runs against a real containerd: the plan lists
// the kubelet's pods in Talos order with what kind of pod each is, Apply
// removes exactly them, the foreign sandbox and the default-namespace
// container stay, and a second Apply of the same items is a no-op.
func TestRemovesKubeletPodsOnly(t *testing.T) {
	prereqs(t)
	if !testns.Enter(t, testns.Mount|testns.Net|testns.PID) {
		return
	}
	n := startNode(t)
	plantPods(t, n)
	env := testEnv(t)
	ctx := context.Background()
	pods, ctrs := New(Options{Sockets: []string{"unix://" + testSocket, "/run/k3s/containerd/containerd.sock"}, Grace: time.Second})

	ps, err := pods.Discover(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := targets(ps), "default/web-7d9f-x2x kube-system/kube-proxy-q8x kube-system/etcd-node1"; got != want {
		t.Fatalf("pods %q, want %q (pod network first, static last)", got, want)
	}
	for i, want := range []string{"kubelet pod (io.kubernetes.pod.* labels), pod network, 2 containers", "DaemonSet pod", "static pod (kubernetes.io/config.source=file), host network"} {
		if !strings.Contains(ps[i].Reason, want) {
			t.Errorf("reason of %s: %q, want it to say %q", ps[i].Target, ps[i].Reason, want)
		}
	}
	cs, err := ctrs.Discover(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := targets(cs), "default/web-7d9f-x2x/app default/web-7d9f-x2x/sidecar kube-system/etcd-node1/etcd kube-system/kube-proxy-q8x/kube-proxy"; sortedTargets(cs) != want {
		t.Fatalf("containers %q, want %q", got, want)
	}

	all, _ := New(Options{Sockets: []string{testSocket}, All: true})
	if ap, err := all.Discover(ctx, env); err != nil || len(ap) != 4 {
		t.Errorf("--all-containers: %d pods (%v), want 4 with the foreign sandbox", len(ap), err)
	}

	nk := netns.New(netns.Options{Pods: pods})
	nsItems, err := nk.Discover(ctx, env)
	if err != nil || len(nsItems) != 1 || !strings.HasPrefix(nsItems[0].Target, "/run/netns/cni-") {
		t.Fatalf("netns: %v %+v, want the web pod's cni-* namespace (used only by pod processes)", err, nsItems)
	}
	if lone, _ := netns.New(netns.Options{}).Discover(ctx, env); len(lone) != 0 {
		t.Errorf("without pod knowledge an in-use netns was planned: %+v", lone)
	}

	rec := newRecorder(t)
	pods.Apply(ctx, env, ps, rec)
	ctrs.Apply(ctx, env, cs, rec)
	nk.Apply(ctx, env, nsItems, rec)
	rec.check(append(append(ps, cs...), nsItems...))

	left, err := n.ctrd.RS.ListPodSandbox(ctx, &rt.ListPodSandboxRequest{})
	if err != nil || len(left.Items) != 1 || left.Items[0].GetMetadata().GetName() != "foreign" {
		t.Errorf("sandboxes left: %v %v, want only the foreign one", left, err)
	}
	if out, err := n.ctrd.Ctr(ctx, nil, "default", "tasks", "ls"); err != nil || !strings.Contains(out, "RUNNING") {
		t.Errorf("default-namespace decoy task: %v\n%s", err, out)
	}
	if again, _ := pods.Discover(ctx, env); len(again) != 0 {
		t.Errorf("pods left after Apply: %s", targets(again))
	}
	if m, _ := filepath.Glob("/run/netns/cni-*"); len(m) != 0 {
		t.Errorf("netns left: %v", m)
	}

	// A re-run of the same plan (after a crash, say) finds everything gone.
	rec2 := newRecorder(t)
	pods.Apply(ctx, env, ps, rec2)
	ctrs.Apply(ctx, env, cs, rec2)
	nk.Apply(ctx, env, nsItems, rec2)
	rec2.check(append(append(ps, cs...), nsItems...))
}

// TestRuntimeDownKillsOnlyKubernetesShims: containerd is killed with pods
// running; the plan kills the k8s.io shims and their trees, the default
// namespace's shim and container survive, the pods' netns go, and once
// containerd is back a second plan removes the sandbox records. The pods
// are applied from the plan read back from JSON: the shims' PIDs and start
// times must survive decoding.
func TestRuntimeDownKillsOnlyKubernetesShims(t *testing.T) {
	prereqs(t)
	if !testns.Enter(t, testns.Mount|testns.Net|testns.PID) {
		return
	}
	n := startNode(t)
	ctx := context.Background()
	if _, err := n.ctrd.RunPods(ctx, []critest.Pod{
		n.pod("default", "web", 1, false, nil, nil, "app", "sidecar"),
		n.pod("kube-system", "kube-proxy-z", 2, true, nil, nil, "kube-proxy"),
	}, 2); err != nil {
		t.Fatal(err)
	}
	if err := n.ctrd.RunDecoy(ctx, "default", "user-web", n.cgroup+"/user/decoy"); err != nil {
		t.Fatal(err)
	}
	n.ctrd.Kill()
	env := testEnv(t)
	pods, ctrs := New(Options{Sockets: []string{testSocket}, Grace: time.Second, DialTimeout: 500 * time.Millisecond})
	ps, err := pods.Discover(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := targets(ps); got != "default/web kube-system/kube-proxy-z" {
		t.Fatalf("pods of a stopped runtime: %q", got)
	}
	for _, it := range ps {
		if it.Action != plan.ActionKill || !strings.Contains(it.Reason, "is down") {
			t.Errorf("%s: action %s reason %q, want kill because the runtime is down", it.Target, it.Action, it.Reason)
		}
	}
	if cs, err := ctrs.Discover(ctx, env); err != nil || len(cs) != 0 {
		t.Errorf("containers of a stopped runtime: %v %v, want none and no error", cs, err)
	}
	nk := netns.New(netns.Options{Pods: pods})
	nsItems, err := nk.Discover(ctx, env)
	if err != nil || len(nsItems) != 1 {
		t.Fatalf("netns while pods run: %v %+v", err, nsItems)
	}
	decoy := shimsOf(t, "default")
	if len(decoy) != 1 || len(shimsOf(t, "k8s.io")) == 0 {
		t.Fatalf("shims before: default %v, k8s.io %v", decoy, shimsOf(t, "k8s.io"))
	}
	decoyKids := descendants(mustChildren(t), decoy[0])

	ps = readBack(t, ps)
	rec := newRecorder(t)
	pods.Apply(ctx, env, ps, rec)
	nk.Apply(ctx, env, nsItems, rec)
	rec.check(append(ps, nsItems...))
	if left := shimsOf(t, "k8s.io"); len(left) != 0 {
		t.Errorf("k8s.io shims left: %v", left)
	}
	if got := shimsOf(t, "default"); len(got) != 1 || got[0] != decoy[0] {
		t.Errorf("default-namespace shim %v, want %v alive", got, decoy)
	}
	for _, k := range decoyKids {
		if st, err := procs.ReadStat("/proc", k); err != nil || st.State == 'Z' {
			t.Errorf("decoy container process %d gone", k)
		}
	}
	if m, _ := filepath.Glob("/run/netns/cni-*"); len(m) != 0 {
		t.Errorf("netns left: %v", m)
	}

	n.restart(t)
	ps2, err := pods.Discover(ctx, env)
	if err != nil || len(ps2) != 2 || ps2[0].Action != plan.ActionRemove {
		t.Fatalf("after restart: %v %+v, want the two sandbox records to remove", err, ps2)
	}
	cs2, _ := ctrs.Discover(ctx, env)
	rec2 := newRecorder(t)
	pods.Apply(ctx, env, ps2, rec2)
	ctrs.Apply(ctx, env, cs2, rec2)
	rec2.check(append(ps2, cs2...))
	if again, _ := pods.Discover(ctx, env); len(again) != 0 {
		t.Errorf("records left: %s", targets(again))
	}
}

// shimsOf lists the running shims of a containerd namespace.
func shimsOf(t *testing.T, ns string) []int {
	t.Helper()
	pids, err := procs.ListPIDs("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, pid := range pids {
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		st, err := procs.ReadStat("/proc", pid)
		if err == nil && st.State != 'Z' && IsShimExe(exe) && ShimFlags(strings.Split(string(b), "\x00"))["namespace"] == ns {
			out = append(out, pid)
		}
	}
	return out
}

// readBack returns items as a plan read back from JSON holds them: each
// detail a decoded map.
func readBack(t *testing.T, items []plan.Item) []plan.Item {
	t.Helper()
	b, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	var out []plan.Item
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if _, ok := out[0].Detail.(map[string]any); !ok {
		t.Fatalf("detail read back as %T, want a map", out[0].Detail)
	}
	return out
}

func mustChildren(t *testing.T) map[int][]int {
	t.Helper()
	m, _, err := children("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sortedTargets(items []plan.Item) string {
	s := strings.Fields(targets(items))
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return strings.Join(s, " ")
}
