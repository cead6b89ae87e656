package profile

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// rancherDist is what K3s and RKE2 share: one supervisor binary, a data dir
// named in config.yaml(.d) or the unit's flags, containerd under /run/k3s,
// static pods under <data-dir>/agent/pod-manifests. They differ in names.
type rancherDist struct {
	name, binary string
	units        []string
	dataDir      string // default
	etcDir       string // /etc/rancher/<name>
	envPrefix    string // K3S_ / RKE2_ environment variables
	// cniConfDir is where the distribution's bundled CNI writes, given the
	// data dir.
	cniConfDir   func(dataDir string) string
	cniStateDirs []string
	serviceCIDR  string
	clusterCIDR  string
	// supervisorPorts: the supervisor process listens there (K3s runs the
	// whole control plane in it; RKE2 only its supervisor).
	supervisorPorts []int
}

// binDirs are where the install scripts put binaries (INSTALL_*_BIN_DIR
// defaults and the RPM's /usr/bin).
var binDirs = []string{"/usr/local/bin", "/usr/bin", "/opt/bin"}

var k3sDist = rancherDist{
	name: "k3s", binary: "k3s", units: []string{"k3s.service", "k3s-agent.service"},
	dataDir: "/var/lib/rancher/k3s", etcDir: "/etc/rancher/k3s", envPrefix: "K3S_",
	cniConfDir:   func(d string) string { return d + "/agent/etc/cni/net.d" },
	cniStateDirs: []string{"/var/lib/cni", "/run/flannel"},
	serviceCIDR:  "10.43.0.0/16",
	clusterCIDR:  "10.42.0.0/16",
	supervisorPorts: []int{6443, 6444, 10250, 10248, 10256, 10257, 10258, 10259,
		2379, 2380, 2381, 10010},
}

// rancherPaths are a K3s/RKE2 node's real paths.
type rancherPaths struct {
	DataDir    string
	Config     rancherConfig
	Units      []unit
	Kubelet    Kubelet
	Containerd Containerd
	Sources    []string
}

// discover reads the units' flags, then config.yaml(.d), then the
// environment; flags win over the config file, as in K3s.
func (d rancherDist) discover(h *host.Host) (rancherPaths, error) {
	var rp rancherPaths
	var args []string
	env := map[string]string{}
	for _, name := range d.units {
		u, ok, err := readUnit(h, name)
		if err != nil {
			return rp, err
		}
		if !ok {
			continue
		}
		a, err := u.Args()
		if err != nil {
			return rp, err
		}
		rp.Units = append(rp.Units, u)
		rp.Sources = append(rp.Sources, u.File)
		args = append(args, a...)
		for k, v := range u.Env {
			env[k] = v
		}
	}
	cfgPath := firstNonEmpty(lastFlag(args, "config", "c"), env[d.envPrefix+"CONFIG_FILE"], d.etcDir+"/config.yaml")
	cfg, err := readRancherConfig(h, cfgPath)
	if err != nil {
		return rp, err
	}
	rp.Config = cfg
	rp.Sources = append(rp.Sources, cfg.Files...)
	rp.DataDir = filepath.Clean(firstNonEmpty(lastFlag(args, "data-dir", "d"), cfg.String("data-dir"),
		env[d.envPrefix+"DATA_DIR"], d.dataDir))
	if err := checkDataDir(rp.DataDir); err != nil {
		return rp, fmt.Errorf("%s: %w", d.name, err)
	}
	kargs := kubeletArgsAsFlags(append(cfg.Strings("kubelet-arg"), flagValues(args, "kubelet-arg")...))
	// The kubelet's config is generated under the data dir; only its
	// flags can move the root dir.
	if rp.Kubelet, err = kubeletFromArgs(h, kargs, ""); err != nil {
		return rp, err
	}
	def := Containerd{Root: rp.DataDir + "/agent/containerd", State: "/run/k3s/containerd",
		Socket: "/run/k3s/containerd/containerd.sock"}
	if rp.Containerd, err = ReadContainerd(h, rp.DataDir+"/agent/etc/containerd/config.toml", def); err != nil {
		return rp, err
	}
	if ep := socketPath(firstNonEmpty(lastFlag(args, "container-runtime-endpoint"), cfg.String("container-runtime-endpoint"))); ep != "" {
		rp.Containerd = Containerd{Socket: ep} // an external runtime: not ours to own
	}
	return rp, nil
}

// checkDataDir refuses data dirs whose children a profile must not own as
// a distribution's: / and the shared parents.
func checkDataDir(d string) error {
	if !filepath.IsAbs(d) {
		return fmt.Errorf("data-dir %q is not absolute; K3s and RKE2 need an absolute path", d)
	}
	switch d {
	case "/", "/var", "/var/lib", "/var/lib/rancher", "/etc", "/opt", "/srv", "/home", "/usr":
		return fmt.Errorf("data-dir %s is a shared directory; refusing to treat its children as the distribution's (set --profile explicitly after moving the data)", d)
	}
	return nil
}

// profile builds the distribution's owned set from its real paths.
func (d rancherDist) profile(h *host.Host, rp rancherPaths) Profile {
	data := rp.DataDir
	p := Profile{
		Name:        d.name,
		Units:       append([]string{}, d.units...),
		KubeletRoot: rp.Kubelet.RootDir,
		// RKE2's control plane runs in static pods whose binaries live in
		// container images: only name and exact port identify them.
		Ports: map[string][]int{
			d.binary:                  d.supervisorPorts,
			"kubelet":                 {10250, 10248},
			"kube-apiserver":          {6443},
			"kube-controller-manager": {10257},
			"kube-scheduler":          {10259},
			"kube-proxy":              {10256, 10249},
			"etcd":                    {2379, 2380, 2381},
		},
		StaticPodDirs: []string{data + "/agent/pod-manifests"},
		RejoinPorts:   []int{6443, 9345, 10250, 2379, 2380},
		CNIConfDir:    d.cniConfDir(data),
		CNIStateDirs:  d.cniStateDirs,
	}
	for _, b := range binDirs {
		p.Executables = append(p.Executables, b+"/"+d.binary)
	}
	for _, u := range rp.Units {
		if a, err := u.Args(); err == nil && len(a) > 0 && filepath.IsAbs(a[0]) {
			p.Executables = appendNew(p.Executables, filepath.Clean(a[0]))
		}
	}
	p.Executables = appendNew(p.Executables, bundledBinaries(h, data)...)
	p.MountRoots = []string{"/run/k3s", p.KubeletRoot}
	if c := rp.Containerd; c.Root != "" {
		p.MountRoots = appendNew(p.MountRoots, c.Root, c.State)
		p.RuntimeStateDirs = []string{c.k8sTaskDir()}
	}
	if rp.Containerd.Socket != "" {
		p.CRISockets = []string{rp.Containerd.Socket}
	}
	p.EmbeddedRuntime = true
	p.ServiceCIDRs = splitList(firstNonEmpty(rp.Config.String("service-cidr"), d.serviceCIDR))
	p.ClusterCIDRs = splitList(firstNonEmpty(rp.Config.String("cluster-cidr"), d.clusterCIDR))
	p.RejoinFiles = []string{
		data + "/server/token", data + "/server/node-token", data + "/server/cred/passwd",
		data + "/server/tls/server-ca.crt", data + "/server/db/state.db", data + "/server/db/etcd/config",
		data + "/agent/client-kubelet.crt", data + "/agent/serving-kubelet.crt", data + "/agent/client-ca.crt",
		"/etc/rancher/node/password",
	}
	p.Paths = []paths.Spec{
		// The user's inputs stay (config.yaml names the data dir and the
		// server to join; registries.yaml the mirrors); what the
		// distribution generated goes.
		{Path: d.etcDir, Action: plan.ActionBackupEmpty, Keep: []string{"config.yaml", "config.yaml.d", "registries.yaml"},
			Reason: d.name + "'s generated kubeconfig (precious: backed up; config.yaml and registries.yaml kept)"},
		{Path: "/etc/rancher/node", Action: plan.ActionBackupRemove, Reason: "the node password K3s/RKE2 register with (backed up)"},
		{Path: data + "/server", Action: plan.ActionBackupRemove, Reason: d.name + " server state: datastore (etcd/sqlite), CA, tokens (precious: backed up)"},
		// Air-gap image tarballs under agent/images and containerd
		// config templates are the user's.
		{Path: data + "/agent", Action: plan.ActionEmpty, Keep: []string{"images", "etc"},
			Reason: d.name + " agent state: certificates, containerd content, static pods"},
		{Path: data + "/agent/etc", Action: plan.ActionEmpty, Keep: []string{"containerd"}, Reason: d.name + " agent generated config"},
		{Path: data + "/agent/etc/containerd", Action: plan.ActionEmpty, Keep: []string{"config.toml.tmpl", "config-v3.toml.tmpl"},
			Reason: d.name + " generated containerd config (templates kept)"},
		{Path: p.KubeletRoot, Action: plan.ActionEmpty, Reason: "kubelet root dir"},
		{Path: "/var/log/pods", Action: plan.ActionEmpty, Reason: "pod logs written by the kubelet"},
		{Path: "/var/log/containers", Action: plan.ActionEmpty, Reason: "container log links written by the kubelet"},
		{Path: "/run/k3s", Action: plan.ActionRemove, Reason: "K3s/RKE2 runtime state (containerd socket and tasks)"},
	}
	p.Evidence = append(p.Evidence, sourcesEvidence("real paths from", rp.Sources)...)
	if data != d.dataDir {
		p.Evidence = append(p.Evidence, "data-dir "+data+" (not the default "+d.dataDir+")")
	}
	return p
}

// bundledBinaries lists the executables K3s/RKE2 unpack under
// <data-dir>/data/<hash>/bin (and bin/aux), and <data-dir>/bin. Process
// matching compares file identity, so symlinks there resolve to the
// multicall binary they point at.
func bundledBinaries(h *host.Host, data string) []string {
	var dirs []string
	if ents, err := os.ReadDir(resolveOr(h, data+"/data")); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, data+"/data/"+e.Name()+"/bin", data+"/data/"+e.Name()+"/bin/aux")
			}
		}
	}
	dirs = append(dirs, data+"/bin")
	var out []string
	for _, dir := range dirs {
		ents, err := os.ReadDir(resolveOr(h, dir))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() {
				out = append(out, dir+"/"+e.Name())
			}
		}
	}
	sort.Strings(out)
	return out
}

// K3s returns the K3s profile with the host's real paths.
func K3s(h *host.Host) (Profile, error) { return k3sDist.build(h) }

func (d rancherDist) build(h *host.Host) (Profile, error) {
	rp, err := d.discover(h)
	if err != nil {
		return Profile{}, err
	}
	return d.profile(h, rp), nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func sourcesEvidence(prefix string, files []string) []string {
	if len(files) == 0 {
		return nil
	}
	s := prefix
	for i, f := range files {
		if i > 0 {
			s += ","
		}
		s += " " + f
	}
	return []string{s}
}
