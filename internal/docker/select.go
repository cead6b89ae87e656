package docker

import (
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// Labels the kubelet's dockershim and cri-dockerd put on every container
// they create, and the one RKE puts on its system containers.
const (
	LabelPodName      = "io.kubernetes.pod.name"
	LabelPodNamespace = "io.kubernetes.pod.namespace"
	LabelPodUID       = "io.kubernetes.pod.uid"
	LabelDockerType   = "io.kubernetes.docker.type" // "podsandbox" or "container"
	LabelSandboxID    = "io.kubernetes.sandbox.id"
	LabelRKEName      = "io.rancher.rke.container.name"
)

// rkeName reports whether n is a container RKE1 runs on a node, by the
// exact names RKE gives them (rke/services, rke/cluster). Short-lived
// helpers are included because a crashed rke up leaves them behind.
func rkeName(n string) bool {
	switch n {
	case "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
		"kubelet", "kube-proxy", "nginx-proxy", "service-sidekick",
		"rke-etcd-port-listener", "rke-cp-port-listener", "rke-worker-port-listener",
		"share-mnt", "rke-log-linker", "rke-log-cleaner", "cert-deployer",
		"file-deployer", "etcd-rolling-snapshots":
		return true
	}
	return false
}

// rkeImage reports whether repo (without registry and tag) is one RKE runs
// its system containers from; a name alone is not enough, a user may call
// a container "etcd" too.
func rkeImage(repo string) bool {
	switch repo {
	case "rancher/hyperkube", "rancher/rke-tools", "rancher/coreos-etcd",
		"rancher/mirrored-coreos-etcd", "rancher/rancher-agent":
		return true
	}
	return false
}

// agentImage is the Rancher node agent that `docker run` started when the
// node was registered; its container has a random name. (rancher/rancher,
// the Rancher server, is a different repository and never selected.)
const agentImage = "rancher/rancher-agent"

// Source says why a container is owned.
type Source string

// Sources of owned containers.
const (
	SourceKubelet Source = "kubelet"
	SourceRKE     Source = "rke"
	SourceAgent   Source = "rancher-agent"
	// SourceAll is every other container, chosen with AllContainers.
	SourceAll Source = "all-containers"
)

// Group is the removal order: groups run one after another, the
// containers of one group in parallel.
type Group int

// Groups in the order they are removed. What would recreate containers
// goes first (the Rancher agent runs rke, RKE's kubelet restarts pods);
// then pods as Talos orders them: pod-network pods while the CNI still
// runs, containers before their sandbox, host-network pods (the CNI
// itself) after; RKE's control plane and etcd last.
const (
	GroupControllers Group = iota
	GroupPodContainers
	GroupPodSandboxes
	GroupHostContainers
	GroupHostSandboxes
	GroupSystem
	GroupOther
)

// choice is the selection of one container.
type choice struct {
	source Source
	group  Group
	reason string
	pod    string // namespace/name
	sbox   bool
	host   bool
}

// selector decides container by container; sandboxes maps a sandbox
// container's ID to whether it runs in the host network, for the app
// containers that join it.
type selector struct {
	all       bool
	sandboxes map[string]bool
}

func newSelector(cs []container.Summary, all bool) selector {
	s := selector{all: all, sandboxes: map[string]bool{}}
	for _, c := range cs {
		if isSandbox(c) {
			s.sandboxes[c.ID] = c.HostConfig.NetworkMode == "host"
		}
	}
	return s
}

func isSandbox(c container.Summary) bool {
	if kubeletLabels(c.Labels) {
		return c.Labels[LabelDockerType] == "podsandbox"
	}
	n, ok := ParseShimName(name(c))
	return ok && n.Sandbox()
}

func kubeletLabels(l map[string]string) bool {
	return l[LabelPodName] != "" && l[LabelPodNamespace] != "" && l[LabelPodUID] != ""
}

// name is the container's primary name without the API's leading "/".
func name(c container.Summary) string {
	for _, n := range c.Names {
		// Legacy links add names with a second "/"; the own name has one.
		if n = strings.TrimPrefix(n, "/"); !strings.Contains(n, "/") {
			return n
		}
	}
	return ""
}

// choose returns how a container is owned, or false for one that is not.
// Kubelet containers: the three pod labels, or a name of the exact
// dockershim form. RKE: the RKE label naming one of its containers with
// the container named so (or "old-" so, as RKE renames during upgrades),
// or, for containers RKE made before it labelled them, the exact name and
// an RKE image together. The Rancher agent by its image.
func (s selector) choose(c container.Summary) (choice, bool) {
	nm := name(c)
	if kubeletLabels(c.Labels) {
		ch := choice{source: SourceKubelet, pod: c.Labels[LabelPodNamespace] + "/" + c.Labels[LabelPodName]}
		ch.sbox = c.Labels[LabelDockerType] == "podsandbox"
		ch.reason = "kubelet container (io.kubernetes.pod.* labels) of pod " + ch.pod
		return s.pod(c, ch), true
	}
	if n, ok := ParseShimName(nm); ok {
		ch := choice{source: SourceKubelet, pod: n.Namespace + "/" + n.Pod, sbox: n.Sandbox()}
		ch.reason = "kubelet container (dockershim name) of pod " + ch.pod
		return s.pod(c, ch), true
	}
	if v := c.Labels[LabelRKEName]; rkeName(v) && (nm == v || nm == "old-"+v) {
		return rke(v, fmt.Sprintf("RKE system container %s (label %s=%s)", nm, LabelRKEName, v)), true
	}
	if repo := ImageRepo(c.Image); rkeName(nm) && rkeImage(repo) {
		return rke(nm, fmt.Sprintf("RKE system container %s (image %s)", nm, repo)), true
	}
	if ImageRepo(c.Image) == agentImage {
		return choice{source: SourceAgent, group: GroupControllers, reason: "Rancher node agent (image " + agentImage + ")"}, true
	}
	if s.all {
		return choice{source: SourceAll, group: GroupOther,
			reason: "not created by Kubernetes; removed because of --all-containers"}, true
	}
	return choice{}, false
}

func rke(n, reason string) choice {
	g := GroupSystem
	if n == "kubelet" {
		g = GroupControllers
	}
	return choice{source: SourceRKE, group: g, reason: reason}
}

// pod places a kubelet container in its group by its pod's network.
func (s selector) pod(c container.Summary, ch choice) choice {
	if ch.sbox {
		ch.host = c.HostConfig.NetworkMode == "host"
	} else {
		sid, ok := strings.CutPrefix(c.HostConfig.NetworkMode, "container:")
		if !ok {
			sid = c.Labels[LabelSandboxID]
		}
		ch.host = s.sandboxes[sid] || c.HostConfig.NetworkMode == "host"
	}
	switch {
	case ch.sbox && ch.host:
		ch.group = GroupHostSandboxes
	case ch.sbox:
		ch.group = GroupPodSandboxes
	case ch.host:
		ch.group = GroupHostContainers
	default:
		ch.group = GroupPodContainers
	}
	if ch.host {
		ch.reason += ", host network"
	}
	return ch
}

// anonymousVolumes are the volumes Docker made for the container alone:
// `docker rm -v` removes exactly these (and keeps any still in use);
// named volumes are never removed.
func anonymousVolumes(c container.Summary) []string {
	var out []string
	for _, m := range c.Mounts {
		if m.Type == "volume" && isVolumeID(m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// isVolumeID: Docker names an anonymous volume with 64 hex digits.
func isVolumeID(s string) bool { return len(s) == 64 && hex(s) }
