package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	rt "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodereset/nodereset/internal/cri"
	"github.com/nodereset/nodereset/internal/cri/critest"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Host-side paths of the sandbox's containerd. The socket is named through
// /run (the root's own /run here) to stay short: sun_path holds 108 bytes.
const (
	ContainerdSocket  = "/run/containerd/containerd.sock"
	ContainerdConfig  = "/etc/containerd/config.toml"
	ContainerdPIDFile = "/run/nodesim-containerd/containerd.pid"
	containerdWork    = "/run/nodesim-containerd"
	// decoyNetns is a user's network namespace next to CNI's.
	decoyNetns = "/run/netns/user-vpn"
)

// startContainerd runs a real containerd (CRI, runc, CNI bridge) in the
// sandbox with pods made through CRI as the kubelet makes them: pod-network
// pods with a secret volume, host-network DaemonSet pods (kube-proxy, an
// ingress controller on :443), a static pod on :8443, and a decoy container
// in containerd's default namespace plus a user netns that must survive.
// containerd itself keeps running after a reset: it is the runtime.
func startContainerd(b *builder, self []byte) (func(), error) {
	for _, c := range critest.Commands() {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("sandbox feature containerd needs %s (apt-get install containerd runc containernetworking-plugins busybox-static): %w", c, err)
		}
	}
	if err := shareRun(b); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(b.path("/var/run")); os.IsNotExist(err) {
		b.link("/var/run", "../run")
	}
	b.dir(containerdWork)
	if b.err != nil {
		return nil, b.err
	}
	log, err := os.Create(b.path(containerdWork + "/containerd.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cgroup := fmt.Sprintf("/nodesim-%d", b.m.InitPID)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Its CNI config is its own (the bridge plugin on cni0, which is in
	// the Debian package): /etc/cni/net.d may hold the network feature's
	// flannel config, whose plugin is not installed here, and containerd
	// loads only the first config by name.
	c, err := critest.Start(ctx, critest.Config{
		Root: "/var/lib/containerd", State: "/run/containerd", Socket: ContainerdSocket,
		ConfigFile: b.path(ContainerdConfig), CNIConfDir: b.path(containerdWork + "/net.d"), Log: log,
		Subnet: "10.244.0.0/24",
	})
	if err != nil {
		out, _ := os.ReadFile(log.Name())
		return nil, fmt.Errorf("start containerd: %w\n%s", err, out)
	}
	stop := func() {
		c.Stop()
		_ = critest.RemoveCgroups(cgroup)
	}
	b.file(ContainerdPIDFile, strconv.Itoa(c.PID())+"\n", 0o644)
	if err := plantCRIPods(ctx, b, c, cgroup); err != nil {
		return stop, err
	}
	if err := c.RunDecoy(ctx, "default", "user-web", cgroup+"/user/user-web"); err != nil {
		return stop, err
	}
	// Not `ip netns add`: it bind-mounts /run/netns over itself, which
	// hides the nsfs mounts other features made under it (the network
	// feature's pods), so that nothing could remove them.
	if fd := podNetns(b, filepath.Base(decoyNetns)); fd >= 0 {
		unix.Close(fd)
	}
	if b.err != nil {
		return stop, b.err
	}
	want, err := probeContainerd(*b.m)
	if err != nil {
		return stop, err
	}
	b.m.Decoys.States = append(b.m.Decoys.States, DecoyState{Name: "containerd", Want: want})
	return stop, b.err
}

// shareRun makes the root's tmpfs a shared mount and binds its /run over
// /run once more, as a peer: containerd mounts pod netns at the hard-coded
// /run/netns, and without propagation those nsfs mounts would be visible
// only there, not under the root where nodereset looks. Peers exist only
// in this mount namespace; nothing reaches the real host.
func shareRun(b *builder) error {
	if err := unix.Mount("", b.root, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make the sandbox root a shared mount: %w", err)
	}
	if err := unix.Mount(b.path("/run"), "/run", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s over /run as a peer: %w", b.path("/run"), err)
	}
	return nil
}

func criUID(i int) string { return fmt.Sprintf("c0de%04x-0000-4000-8000-%012x", i, i) }

// plantCRIPods runs the pods and records what nodereset must plan.
func plantCRIPods(ctx context.Context, b *builder, c *critest.Containerd, cgroup string) error {
	ds := func(app string) map[string]string {
		return map[string]string{cri.LabelTemplateGeneration: "1", cri.LabelRevisionHash: "6b9c8d7f5", "k8s-app": app}
	}
	static := map[string]string{cri.AnnotationConfigSource: "file", "kubernetes.io/config.hash": "9f2d1c", "kubernetes.io/config.seen": "2024-01-01T00:00:00.000000000Z"}
	listen := func(port int) []string {
		return []string{"sh", "-c", fmt.Sprintf(`trap "exit 0" TERM INT; httpd -f -p %d & wait $!`, port)}
	}
	pods := []critest.Pod{
		{Namespace: "kube-system", Name: "kube-proxy-7xk2p", HostNetwork: true, Labels: ds("kube-proxy"),
			Containers: []critest.Container{{Name: "kube-proxy"}}},
		{Namespace: "ingress-nginx", Name: "ingress-nginx-controller-h4v9z", HostNetwork: true, Labels: ds("ingress-nginx"),
			Containers: []critest.Container{{Name: "controller", Args: listen(443)}}},
		{Namespace: "kube-system", Name: "kube-vip-" + nodeName, HostNetwork: true, Annotations: static,
			Labels: map[string]string{"component": "kube-vip"}, Containers: []critest.Container{{Name: "kube-vip", Args: listen(8443)}}},
	}
	for i := 0; i < 2; i++ {
		pods = append(pods, critest.Pod{Namespace: "default", Name: fmt.Sprintf("web-5c7d9f-%d", i),
			Labels:     map[string]string{"app": "web", "pod-template-hash": "5c7d9f"},
			Containers: []critest.Container{{Name: "app"}, {Name: "sidecar"}}})
	}
	for i := range pods {
		p := &pods[i]
		p.UID, p.LogRoot, p.CgroupParent = criUID(i), b.path("/var/log/pods"), cgroup+"/kubepods"
		if p.HostNetwork {
			continue
		}
		// A kubelet-style secret volume: a tmpfs under the pod's dir,
		// bound into every container.
		vol := "/var/lib/kubelet/pods/" + p.UID + "/volumes/kubernetes.io~secret/web-token"
		b.tmpfs(vol)
		b.file(vol+"/token", "fake-token-"+p.UID, 0o600)
		b.expect(plan.KindMount, vol)
		for j := range p.Containers {
			p.Containers[j].Mounts = []*rt.Mount{{ContainerPath: "/var/run/secrets/web", HostPath: b.path(vol), Readonly: true}}
		}
	}
	if b.err != nil {
		return b.err
	}
	// The network feature plants cni-* netns of its own: count only the
	// ones the pods made.
	before, _ := filepath.Glob(b.path("/run/netns/cni-*"))
	if _, err := c.RunPods(ctx, pods, 4); err != nil {
		return err
	}
	for _, p := range pods {
		b.expect(plan.KindPod, p.Namespace+"/"+p.Name)
		for _, ct := range p.Containers {
			b.expect(plan.KindContainer, p.Namespace+"/"+p.Name+"/"+ct.Name)
		}
	}
	all, _ := filepath.Glob(b.path("/run/netns/cni-*"))
	var ns []string
	for _, p := range all {
		if !slices.Contains(before, p) {
			ns = append(ns, p)
			b.expect(plan.KindNetns, "/run/netns/"+filepath.Base(p))
		}
	}
	if len(ns) != 2 {
		return fmt.Errorf("containerd made %d cni-* netns under %s, want 2: is /run shared with the root?", len(ns), b.path("/run/netns"))
	}
	return nil
}

// probeContainerd prints the containerd decoys' state from procfs and the
// mount table, so it works while containerd itself is down: each shim of a
// namespace other than k8s.io with its start time and its processes, and
// the user's netns.
func probeContainerd(m Manifest) (string, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return "", err
	}
	kids := map[int]int{}
	type shim struct {
		pid   int
		line  string
		start uint64
	}
	var shims []shim
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := procPPID(pid); ppid > 0 {
			kids[ppid]++
		}
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		if !cri.IsShimExe(exe) {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		f := cri.ShimFlags(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
		// Namespace moby is dockerd's (it uses this containerd when it
		// finds it at the default socket): the docker feature's probe
		// covers its containers, some of which the reset removes.
		if f["namespace"] == "k8s.io" || f["namespace"] == "moby" || f["address"] != ContainerdSocket {
			continue
		}
		st, _ := procStart("/proc", pid)
		shims = append(shims, shim{pid: pid, start: st, line: "shim -namespace " + f["namespace"] + " -id " + f["id"]})
	}
	var lines []string
	for _, s := range shims {
		lines = append(lines, fmt.Sprintf("%s start %d, %d child processes", s.line, s.start, kids[s.pid]))
	}
	mounted, err := mountinfo.Mounted(filepath.Join(m.Root, decoyNetns))
	lines = append(lines, fmt.Sprintf("netns %s mounted=%v err=%v", decoyNetns, mounted, err))
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n", nil
}

func procPPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
