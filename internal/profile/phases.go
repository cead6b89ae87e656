package profile

import (
	"slices"
	"time"

	"github.com/nodereset/nodereset/internal/cni"
	"github.com/nodereset/nodereset/internal/cri"
	"github.com/nodereset/nodereset/internal/docker"
	"github.com/nodereset/nodereset/internal/firewall"
	"github.com/nodereset/nodereset/internal/ipsets"
	"github.com/nodereset/nodereset/internal/ipvs"
	"github.com/nodereset/nodereset/internal/links"
	"github.com/nodereset/nodereset/internal/mounts"
	"github.com/nodereset/nodereset/internal/netns"
	"github.com/nodereset/nodereset/internal/nftables"
	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/internal/preflight"
	"github.com/nodereset/nodereset/internal/procs"
	"github.com/nodereset/nodereset/internal/services"
	"github.com/nodereset/nodereset/internal/staticpods"
	"github.com/nodereset/nodereset/pkg/engine"
)

// Options are the user's choices that change how kinds act.
type Options struct {
	Backup      bool
	LazyUnmount bool
	Parallel    int
	TermTimeout time.Duration
	KillTimeout time.Duration
	StopTimeout time.Duration
	MountInfo   string
	// Grace is how long containers get to stop before they are killed.
	Grace time.Duration
	// AllContainers removes every container of the runtimes, not only
	// Kubernetes' (the seeds' behaviour; opt-in, warned about in the plan).
	AllContainers bool
	// Images removes the images only removed containers used.
	Images bool
	// CRISockets are endpoints the user named (--cri-socket).
	CRISockets []string
	// ServiceCIDRs and ClusterCIDRs add to the profile's (--service-cidr,
	// --cluster-cidr).
	ServiceCIDRs []string
	ClusterCIDRs []string
	// Conntrack deletes the translated conntrack flows to Service IPs.
	Conntrack bool
}

// Phase names, in the order they run.
const (
	PhaseServices   = "stop services"
	PhaseStaticPods = "remove static pods"
	PhaseContainers = "remove containers"
	PhaseProcesses  = "stop processes"
	PhasePods       = "remove pods"
	PhaseMounts     = "unmount"
	PhaseFirewall   = "firewall"
	PhaseNetwork    = "network"
	PhasePaths      = "remove files"
)

// Phases turns a profile into the engine's ordered phases. Services go
// first so that systemd does not restart what is killed next; static pod
// manifests before processes so that a kubelet that survives cannot start
// them again; mounts before files so that nothing is removed through a
// mount (the path kind also refuses to cross one).
func Phases(p Profile, o Options) []engine.Phase {
	co := cri.Options{
		Sockets: p.CRISockets, Explicit: o.CRISockets, KubeletRoot: p.KubeletRoot,
		Grace: o.Grace, KillTimeout: o.KillTimeout, Parallel: o.Parallel, All: o.AllContainers, Images: o.Images,
	}
	pods, ctrs := cri.New(co)
	return []engine.Phase{
		{Name: PhaseServices, Kinds: []engine.Kind{services.New(services.Options{
			Units: p.Units, KeepEnabled: p.KeepEnabled, StopTimeout: o.StopTimeout,
		})}},
		{Name: PhaseStaticPods, Kinds: []engine.Kind{staticpods.New(staticpods.Options{Dirs: p.StaticPodDirs, Backup: o.Backup})}},
		{Name: PhaseContainers, Kinds: containerKinds(p, o)},
		{Name: PhaseProcesses, Kinds: []engine.Kind{procs.New(procs.Options{
			Executables: p.Executables, Ports: p.Ports, TermTimeout: o.TermTimeout, KillTimeout: o.KillTimeout,
		})}},
		// After the processes, so that a kubelet which is not a systemd unit
		// is gone too and cannot recreate pods; before unmount and network,
		// because removing a sandbox needs its CNI config and bridge.
		{Name: PhasePods, Kinds: []engine.Kind{pods, ctrs, cri.NewImages(co), netns.New(netns.Options{Pods: pods})}},
		{Name: PhaseMounts, Kinds: []engine.Kind{mounts.New(mounts.Options{
			Roots: p.MountRoots, Lazy: o.LazyUnmount, Parallel: o.Parallel, MountInfo: o.MountInfo,
		})}},
		// Rules before the sets they match (the kernel keeps a set in use)
		// and before the links and CNI files; nft tables and IPVS services
		// depend on nothing else.
		{Name: PhaseFirewall, Kinds: []engine.Kind{firewall.New(firewall.Options{ClusterCIDRs: slices.Concat(p.ClusterCIDRs, o.ClusterCIDRs)}),
			nftables.New(nftables.Options{}),
			ipvs.New(ipvs.Options{ServiceCIDRs: slices.Concat(p.ServiceCIDRs, o.ServiceCIDRs)}),
			ipsets.New(ipsets.Options{}),
			// Last: once no rule translates new flows to Services.
			firewall.NewConntrack(firewall.Options{ServiceCIDRs: slices.Concat(p.ServiceCIDRs, o.ServiceCIDRs), Conntrack: o.Conntrack}),
		}},
		{Name: PhaseNetwork, Kinds: []engine.Kind{
			links.New(links.Options{CNIConfDir: cniConfDir(p)}),
			cni.New(cni.Options{ConfDir: cniConfDir(p), LibDir: cniLibDir, StateDirs: cniStateDirs(p), Backup: o.Backup, Hold: func() bool {
				return !p.EmbeddedRuntime && pods.RuntimeWasDown()
			}}),
		}},
		{Name: PhasePaths, Kinds: []engine.Kind{paths.New(paths.Options{Specs: p.Paths, Backup: o.Backup})}},
	}
}

// containerKinds remove the Kubernetes pods and containers of every runtime
// the profile knows, before the component processes go: RKE's kubelet is a
// container, and a kubelet killed first would be restarted by Docker.
func containerKinds(p Profile, o Options) []engine.Kind {
	sockets := p.DockerSockets
	if len(sockets) == 0 {
		// Kubernetes' containers are told by their labels, so looking on a
		// kubeadm node's Docker (dockershim, cri-dockerd) is safe.
		sockets = []string{"/var/run/docker.sock", "/run/docker.sock"}
	}
	do := docker.Options{Sockets: sockets, AllContainers: o.AllContainers, Images: o.Images, Grace: o.Grace, Parallel: o.Parallel}
	return []engine.Kind{docker.New(do), docker.NewImages(do)}
}

// cniLibDir is where libcni keeps IPAM leases and cached results; it is
// shared with podman and CRI-O, so only Kubernetes networks' entries go.
const cniLibDir = "/var/lib/cni"

func cniConfDir(p Profile) string {
	if p.CNIConfDir == "" {
		return "/etc/cni/net.d"
	}
	return p.CNIConfDir
}

// pluginStateDirs are written only by Kubernetes network plugins, whatever
// the distribution.
var pluginStateDirs = []string{"/run/flannel", "/var/lib/calico", "/run/calico", "/var/lib/weave"}

// cniStateDirs are the CNI plugins' own state dirs; the shared lib dir is
// handled apart.
func cniStateDirs(p Profile) []string {
	var out []string
	for _, d := range append(append([]string{}, pluginStateDirs...), p.CNIStateDirs...) {
		if d != cniLibDir && !contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// Checks are the profile's rejoin checks for verify.
func Checks(p Profile) []engine.Check {
	return []engine.Check{
		preflight.Ports(p.RejoinPorts),
		preflight.FilesAbsent(p.RejoinFiles),
		preflight.DirsEmpty(p.StaticPodDirs),
	}
}
