package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
	"sigs.k8s.io/yaml"
)

// buildNodesim builds the nodesim binary into a temp dir (go caches it).
func buildNodesim(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nodesim")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nodereset/nodereset/cmd/nodesim")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build nodesim: %v\n%s", err, out)
	}
	return bin
}

func startNode(t *testing.T, pods, volumes int, detach bool) *Node {
	t.Helper()
	testns.Root(t)
	testns.Command(t, "nsenter")
	dir, bin := t.TempDir(), buildNodesim(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	n, err := Start(ctx, Options{Nodesim: bin, Root: filepath.Join(dir, "root"),
		State: filepath.Join(dir, "state"), Pods: pods, Volumes: volumes, Detach: detach})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("up %d pods x %d volumes: %v", pods, volumes, time.Since(t0))
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// inside runs a command in the sandbox and returns its output.
func inside(t *testing.T, n *Node, name string, args ...string) (string, error) {
	t.Helper()
	out, err := n.Command(context.Background(), name, args...).CombinedOutput()
	return string(out), err
}

func TestNode(t *testing.T) {
	n := startNode(t, 3, 4, false)
	m := n.Manifest()

	// 3 pods x 4 volumes, plus pod 0's stacked (2), nested (2) and the CSI global mount.
	for k, want := range map[plan.Kind]int{plan.KindService: 1, plan.KindProcess: 6,
		plan.KindStaticPod: 4, plan.KindPath: 6, plan.KindMount: 3*4 + 5} {
		if got := m.Count(k); got != want {
			t.Errorf("expected %s items: %d, want %d", k, got, want)
		}
	}
	d := m.Decoys
	if len(d.Processes) != 4 || len(d.Listeners) != 3 || len(d.Mounts) != 2 || len(d.Units) != 3 || len(d.Files) != 13 {
		t.Errorf("decoys: %d processes, %d listeners, %d mounts, %d units, %d files; want 4, 3, 2, 3, 13",
			len(d.Processes), len(d.Listeners), len(d.Mounts), len(d.Units), len(d.Files))
	}

	// Nothing leaks to the machine: the root stays empty out here.
	if ents, err := os.ReadDir(m.Root); err != nil || len(ents) != 0 {
		t.Errorf("host side of %s: %d entries, %v; want empty", m.Root, len(ents), err)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), m.Root) {
		t.Errorf("a sandbox mount under %s is visible on the host", m.Root)
	}

	// Listeners answer inside, and a port nobody holds does not.
	for _, port := range []int{10250, 10248, 6443, 10257, 10259, 2379, 2380, 10256, 80, 8080, 18250} {
		if out, err := inside(t, n, "/bin/bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", port)); err != nil {
			t.Errorf("port %d inside: %v %s", port, err, out)
		}
	}
	if _, err := inside(t, n, "/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/10251"); err == nil {
		t.Error("port 10251 answers inside, but nothing listens there")
	}

	// Every expected mount is mounted as often as listed; every expected
	// process runs the copy under the root.
	snap, err := n.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, m, snap)
	uid0 := podUID(0)
	for _, want := range []string{
		"path /var/lib/kubelet/userlink Lrwxrwxrwx -> ../../home/user",
		"path /var/log/containers/user.log Lrwxrwxrwx -> /home/user/notes.txt",
		"path /var/lib/kubelet/pods/" + uid0 + "/volumes/kubernetes.io~empty-dir/cache/link Lrwxrwxrwx -> /home/user/important",
		"path /etc/systemd/system/multi-user.target.wants/kubelet.service Lrwxrwxrwx -> /lib/systemd/system/kubelet.service",
		"path /var/lib/dpkg/info/kubelet.list ",
	} {
		if !strings.Contains(snap, "\n"+want) {
			t.Errorf("snapshot lacks %q", want)
		}
	}
	if strings.Contains(snap, "mount /var/lib/kubelet/pods/"+uid0+"/volumes/kubernetes.io~empty-dir/cache ") {
		t.Error("the on-disk emptyDir is a mount")
	}
	// The fake etcd ignores SIGTERM in the kernel, where a reset sees it.
	etcd := m.Expected[0]
	for _, it := range m.Expected {
		if it.Kind == plan.KindProcess && strings.HasSuffix(procExe(snap, it.Target), "/usr/local/bin/etcd") {
			etcd = it
		}
	}
	if out, err := inside(t, n, "/bin/grep", "SigIgn", "/proc/"+etcd.Target+"/status"); err != nil || !sigIgnored(out, 15) {
		t.Errorf("etcd (pid %s) does not ignore SIGTERM: %q %v", etcd.Target, out, err)
	}
	if again, err := n.Snapshot(context.Background()); err != nil || again != snap {
		t.Errorf("two snapshots differ (err %v)", err)
	}

	// A static pod manifest is a valid kube-system Pod.
	out, err := inside(t, n, "/bin/cat", filepath.Join(m.Root, "/etc/kubernetes/manifests/etcd.yaml"))
	var pod struct {
		Kind     string
		Metadata struct{ Name, Namespace string }
	}
	if err != nil || yaml.Unmarshal([]byte(out), &pod) != nil || pod.Kind != "Pod" || pod.Metadata.Namespace != "kube-system" {
		t.Errorf("etcd.yaml: %+v (%v)\n%s", pod, err, out)
	}

	if err := n.Check(context.Background()); err != nil {
		t.Fatalf("fresh sandbox: %v", err)
	}
	if out, err := inside(t, n, "/bin/rm", filepath.Join(m.Root, "/home/user/notes.txt")); err != nil {
		t.Fatalf("rm decoy: %v %s", err, out)
	}
	var webd DecoyProcess
	for _, p := range d.Processes {
		if p.Exe == "/usr/sbin/webd" {
			webd = p
		}
	}
	if out, err := inside(t, n, "/bin/kill", "-KILL", strconv.Itoa(webd.PID)); err != nil {
		t.Fatalf("kill %s: %v %s", webd.Exe, err, out)
	}
	err = n.Check(context.Background())
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("Check after damage: %v, want ErrDamaged", err)
	}
	for _, want := range []string{"file /home/user/notes.txt: missing", "process " + strconv.Itoa(webd.PID) + " (/usr/sbin/webd)", "listener :80:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error does not name %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "listener :8080") {
		t.Errorf("Check blames :8080 for the death of :80:\n%v", err)
	}

	pid := n.cmd.Process.Pid
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if procAlive("/proc", pid) {
		t.Errorf("init %d still alive after Close", pid)
	}
	if _, err := os.Stat(filepath.Join(n.State(), ManifestFile)); !os.IsNotExist(err) {
		t.Errorf("manifest left after Close: %v", err)
	}
}

func checkSnapshot(t *testing.T, m Manifest, snap string) {
	t.Helper()
	mounts := map[string]int{}
	procs := map[string]string{}
	for _, l := range strings.Split(snap, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] == "mount":
			mounts[f[1]]++
		case len(f) > 2 && f[0] == "proc":
			procs[f[1]] = f[2]
		}
	}
	want := map[string]int{}
	for _, it := range m.Expected {
		switch it.Kind {
		case plan.KindMount:
			want[it.Target]++
		case plan.KindProcess:
			if exe := procs[it.Target]; !strings.HasPrefix(exe, m.Root+"/") {
				t.Errorf("expected process %s runs %q, want a binary under %s", it.Target, exe, m.Root)
			}
		}
	}
	for p, c := range want {
		if mounts[p] != c {
			t.Errorf("mount %s: mounted %d times, manifest lists %d", p, mounts[p], c)
		}
	}
	for _, dm := range m.Decoys.Mounts {
		if mounts[dm.Point] != 1 {
			t.Errorf("decoy mount %s mounted %d times", dm.Point, mounts[dm.Point])
		}
	}
}

func procExe(snap, pid string) string {
	for _, l := range strings.Split(snap, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "proc" && f[1] == pid {
			return f[2]
		}
	}
	return ""
}

// sigIgnored parses a "SigIgn:\t<hex mask>" line.
func sigIgnored(line string, sig uint) bool {
	mask, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "SigIgn:")), 16, 64)
	return err == nil && mask&(1<<(sig-1)) != 0
}

// TestDown covers nodesim down's path: a detached sandbox stopped through
// Open, by PID and start time, with etcd ignoring SIGTERM.
func TestDown(t *testing.T) {
	n := startNode(t, 1, 1, true)
	if _, err := Start(context.Background(), Options{Nodesim: n.nodesim, Root: n.m.Root, State: n.State()}); err == nil {
		t.Error("second Start on a live state directory succeeded")
	}
	o, err := Open(n.State(), n.nodesim)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("down: %v", time.Since(t0))
	_ = n.cmd.Wait() // we started it, so we reap it
	if procAlive("/proc", n.m.InitPID) {
		t.Errorf("init %d alive after down", n.m.InitPID)
	}
	if out, err := o.Command(context.Background(), "/bin/true").CombinedOutput(); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("Command after down: %v %s; want a refusal", err, out)
	}
}

func TestUpAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	n := startNode(t, 250, 4, false)
	if got := n.Manifest().Count(plan.KindMount); got != 250*4+5 {
		t.Errorf("mounts: %d, want %d", got, 250*4+5)
	}
	t1 := time.Now()
	if err := n.Check(context.Background()); err != nil {
		t.Error(err)
	}
	check := time.Since(t1)
	t2 := time.Now()
	if err := n.Close(); err != nil {
		t.Error(err)
	}
	t.Logf("250x4: check %v, close %v", check, time.Since(t2))
}

func TestOptionsRefuseOverlap(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []Options{
		{Nodesim: "x", Root: dir, State: filepath.Join(dir, "state")},
		{Nodesim: "x", Root: filepath.Join(dir, "s", "root"), State: filepath.Join(dir, "s")},
		{Nodesim: "x", Root: "/", State: dir},
		{Nodesim: "x", Root: filepath.Join(dir, "r"), State: dir, Pods: -1},
		{Root: filepath.Join(dir, "r"), State: dir},
	} {
		if err := o.normalize(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	ok := Options{Nodesim: "x", Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "root-state")}
	if err := ok.normalize(); err != nil {
		t.Errorf("sibling root-state refused: %v", err)
	}
}

func TestStaticPodsAreValidYAML(t *testing.T) {
	for name, text := range staticPods() {
		var pod struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
			Spec     struct {
				Containers []struct{ Command []string }
				Volumes    []struct{ HostPath struct{ Path string } }
			}
		}
		if err := yaml.Unmarshal([]byte(text), &pod); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if pod.Kind != "Pod" || pod.Metadata.Namespace != "kube-system" || pod.Metadata.Name+".yaml" != name ||
			len(pod.Spec.Containers) != 1 || len(pod.Spec.Volumes) == 0 || pod.Spec.Volumes[0].HostPath.Path == "" {
			t.Errorf("%s parses to %+v", name, pod)
		}
	}
}

func TestProcStart(t *testing.T) {
	a, err := procStart("/proc", os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("own start time: %d, %v", a, err)
	}
	if b, _ := procStart("/proc", os.Getpid()); b != a {
		t.Errorf("start time not stable: %d then %d", a, b)
	}
	if !procAlive("/proc", os.Getpid()) {
		t.Error("self not alive")
	}
	if _, err := procStart("/proc", 1<<30); err == nil {
		t.Error("start time of a PID that cannot exist")
	}
}
