package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/cri/critest"
	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

// criKinds are the kinds the containerd feature plants and checks exactly.
var criKinds = []plan.Kind{plan.KindPod, plan.KindContainer, plan.KindNetns}

// ctrNode starts a sandbox of profile's layout ("" for the default) with a
// real containerd, kubelet-made pods and the extra features. Its root is
// short: containerd's socket path must fit in sun_path.
func ctrNode(t *testing.T, profile string, features ...string) *sandbox.Node {
	t.Helper()
	testns.Root(t)
	testns.Command(t, "nsenter")
	testns.Command(t, "ip")
	for _, c := range critest.Commands() {
		testns.Command(t, c)
	}
	dir, err := os.MkdirTemp("", "ctr")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := sandbox.Start(ctx, sandbox.Options{Nodesim: bins.nodesim, Root: filepath.Join(dir, "root"),
		State: filepath.Join(dir, "state"), Pods: 1, Volumes: 1, Profile: profile, Features: append([]string{"containerd"}, features...)})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close sandbox: %v", err)
		}
		os.RemoveAll(dir)
	})
	return n
}

// criItems counts a plan's items of the CRI kinds by "kind target".
func criItems(p *plan.Plan) map[string]plan.Item {
	out := map[string]plan.Item{}
	for _, it := range p.Items() {
		for _, k := range criKinds {
			if it.Kind == k {
				out[string(it.Kind)+" "+it.Target] = it
			}
		}
	}
	return out
}

// portOpen dials 127.0.0.1:port inside the sandbox.
func portOpen(t *testing.T, n *sandbox.Node, port int) bool {
	t.Helper()
	err := n.Command(t.Context(), "/bin/bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", port)).Run()
	return err == nil
}

// TestContainersResetRemovesPods: the plan lists exactly the kubelet's pods,
// containers and cni netns (with what kind of pod each is), a dry run
// changes nothing, and reset removes them, frees the pods' ports, keeps
// containerd and the decoys (a default-namespace container, a user netns).
func TestContainersResetRemovesPods(t *testing.T) {
	n := ctrNode(t, "")
	m := n.Manifest()
	p := planJSON(t, n)
	got := criItems(p)
	for _, e := range m.Expected {
		if _, ok := got[string(e.Kind)+" "+e.Target]; ok {
			delete(got, string(e.Kind)+" "+e.Target)
			continue
		}
		for _, k := range criKinds {
			if e.Kind == k {
				t.Errorf("planted %s %s missing from the plan", e.Kind, e.Target)
			}
		}
	}
	for key := range got {
		t.Errorf("plan has %s, which was not planted", key)
	}
	reasons := map[string]string{}
	for _, it := range p.Items() {
		reasons[string(it.Kind)+" "+it.Target] = it.Reason
	}
	for key, want := range map[string]string{
		"pod kube-system/kube-vip-sandbox-node":            "static pod",
		"pod kube-system/kube-proxy-7xk2p":                 "DaemonSet pod",
		"pod ingress-nginx/ingress-nginx-controller-h4v9z": "host network",
		"pod default/web-5c7d9f-0":                         "pod network",
	} {
		if !strings.Contains(reasons[key], want) {
			t.Errorf("%s: reason %q does not say %q", key, reasons[key], want)
		}
	}
	if !portOpen(t, n, 443) || !portOpen(t, n, 8443) {
		t.Fatal("the ingress and static pods do not hold :443 and :8443 before the reset")
	}

	// The sandbox snapshot cannot read nsfs files and containerd writes its
	// own state, so a dry run is checked by what CRI reports: every pod,
	// container and netns is still there, and every task still runs.
	tasks := runningTasks(t, n)
	if r := nodereset(t, n, "reset", "--dry-run"); r.code != 0 {
		t.Fatalf("reset --dry-run: %s", r)
	}
	if after := criItems(planJSON(t, n)); len(after) != len(criItems(p)) {
		t.Fatalf("dry run changed the pods: %d CRI items before, %d after", len(criItems(p)), len(after))
	}
	if after := runningTasks(t, n); after != tasks {
		t.Fatalf("dry run changed the running tasks:\n%s\nafter:\n%s", tasks, after)
	}

	r := nodereset(t, n, append([]string{"reset", "--yes", "--grace", "2s"}, fast...)...)
	if left := criItems(planJSON(t, n)); len(left) != 0 {
		t.Fatalf("left after reset: %v\n%s", keys(left), r)
	}
	if r.code != 0 {
		t.Errorf("reset: %s", r)
	}
	for _, port := range []int{443, 8443} {
		if portOpen(t, n, port) {
			t.Errorf("port %d still held after reset", port)
		}
	}
	if out, err := n.Command(t.Context(), "ctr", "-a", sandbox.ContainerdSocket, "version").CombinedOutput(); err != nil {
		t.Errorf("containerd no longer serves after the reset: %v\n%s", err, out)
	}
	checkDecoys(t, n)
}

// TestContainersRuntimeDown: containerd is killed with pods running; reset
// kills exactly the k8s.io shims (the default namespace's survives, checked
// by the decoy probe) and removes the netns; once containerd runs again a
// second reset removes the sandbox records.
func TestContainersRuntimeDown(t *testing.T) {
	n := ctrNode(t, "")
	root := n.Manifest().Root
	// The root is a tmpfs inside the sandbox: read it there.
	pid, err := n.Command(t.Context(), "cat", filepath.Join(root, sandbox.ContainerdPIDFile)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := n.Command(t.Context(), "kill", "-9", strings.TrimSpace(string(pid))).CombinedOutput(); err != nil {
		t.Fatalf("kill containerd: %v %s", err, out)
	}
	p := planJSON(t, n)
	pods := 0
	for _, it := range p.Items() {
		if it.Kind == plan.KindPod {
			pods++
			if it.Action != plan.ActionKill || !strings.Contains(it.Reason, "is down") {
				t.Errorf("%s: %s %q, want kill because the runtime is down", it.Target, it.Action, it.Reason)
			}
		}
	}
	if pods != n.Manifest().Count(plan.KindPod) {
		t.Errorf("%d pods planned with the runtime down, want %d", pods, n.Manifest().Count(plan.KindPod))
	}
	r := nodereset(t, n, append([]string{"reset", "--yes", "--grace", "1s"}, fast...)...)
	if left := criItems(planJSON(t, n)); len(left) != 0 {
		t.Fatalf("left with the runtime down: %v\n%s", keys(left), r)
	}
	if portOpen(t, n, 443) {
		t.Error("port 443 still held")
	}
	checkDecoys(t, n)

	// containerd comes back: its records of the killed pods remain.
	ctrd := n.Command(context.Background(), "containerd", "--config", filepath.Join(root, sandbox.ContainerdConfig))
	if err := ctrd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctrd.Process.Kill(); _ = ctrd.Wait() })
	waitSocket(t, n)
	if again := criItems(planJSON(t, n)); len(again) == 0 {
		t.Fatal("no sandbox records after containerd restarted: the re-run case is not exercised")
	}
	if r := nodereset(t, n, append([]string{"reset", "--yes", "--grace", "1s"}, fast...)...); len(criItems(planJSON(t, n))) != 0 {
		t.Fatalf("records left after the re-run: %s", r)
	}
	checkDecoys(t, n)
}

// runningTasks lists the k8s.io tasks containerd runs, by ID and PID.
func runningTasks(t *testing.T, n *sandbox.Node) string {
	t.Helper()
	out, err := n.Command(t.Context(), "ctr", "-a", sandbox.ContainerdSocket, "-n", "k8s.io", "tasks", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks ls: %v\n%s", err, out)
	}
	if strings.Count(string(out), "RUNNING") != n.Manifest().Count(plan.KindPod)+n.Manifest().Count(plan.KindContainer) {
		t.Fatalf("not every pod and container runs:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func waitSocket(t *testing.T, n *sandbox.Node) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if n.Command(t.Context(), "ctr", "-a", sandbox.ContainerdSocket, "version").Run() == nil {
			return
		}
	}
	t.Fatal("containerd did not come back")
}

func keys(m map[string]plan.Item) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
