package profile

import (
	"path/filepath"
	"strings"

	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

var components = []string{"kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd"}

const kubeadmEtc = "/etc/kubernetes"

// Kubeadm returns the kubeadm profile for the host with its real paths: the
// kubelet's --root-dir and staticPodPath (from its unit, kubeadm-flags.env,
// /etc/default/kubelet and config), etcd's data dir (from its static pod),
// the CRI socket and containerd's state dir.
func Kubeadm(h *host.Host) (Profile, error) {
	k, err := DiscoverKubelet(h)
	if err != nil {
		return Profile{}, err
	}
	spp := firstNonEmpty(k.StaticPodPath, defaultStaticPodPath)
	etcdDir, err := EtcdDataDir(h, spp)
	if err != nil {
		return Profile{}, err
	}
	etcdDir = firstNonEmpty(etcdDir, defaultEtcdDataDir)
	cidrs, err := serviceCIDRs(h, spp)
	if err != nil {
		return Profile{}, err
	}
	p := Profile{
		Name:        "kubeadm",
		KubeletRoot: k.RootDir,
		Ports: map[string][]int{
			"kubelet":                 {10250, 10248},
			"kube-apiserver":          {6443},
			"kube-controller-manager": {10257},
			"kube-scheduler":          {10259},
			"kube-proxy":              {10256, 10249},
			"etcd":                    {2379, 2380, 2381},
		},
		RejoinPorts:   []int{10250, 10257, 10259, 6443, 2379, 2380},
		RejoinFiles:   []string{kubeadmEtc + "/kubelet.conf", kubeadmEtc + "/bootstrap-kubelet.conf", kubeadmEtc + "/pki/ca.crt"},
		StaticPodDirs: []string{spp},
		MountRoots:    []string{k.RootDir},
		ServiceCIDRs:  cidrs,
		CNIConfDir:    "/etc/cni/net.d",
		CNIStateDirs:  []string{"/var/lib/cni"},
	}
	p.KeepEnabled = map[string]string{"kubelet.service": "left enabled: kubeadm reset leaves it enabled " +
		"and kubeadm join expects it so (--uninstall disables it)"}
	for _, c := range components {
		p.Units = append(p.Units, c+".service")
		p.Executables = append(p.Executables, "/usr/bin/"+c, "/usr/local/bin/"+c)
	}
	runtimeHints(h, &p, k.RuntimeEndpoint)
	p.Paths = []paths.Spec{
		{Path: kubeadmEtc, Action: plan.ActionBackupEmpty, Keep: keepChild(kubeadmEtc, spp),
			Reason: "kubeadm's kubeconfigs and PKI (precious: backed up)"},
		{Path: etcdDir, Action: plan.ActionBackupEmpty, Reason: "etcd data of a stacked member (precious: backed up)"},
		{Path: k.RootDir, Action: plan.ActionEmpty, Reason: "kubelet root dir"},
	}
	if k.RootDir != defaultKubeletRoot {
		// kubeadm writes its flags and the kubelet config here whatever
		// --root-dir says.
		p.MountRoots = append(p.MountRoots, defaultKubeletRoot)
		p.Paths = append(p.Paths, paths.Spec{Path: defaultKubeletRoot, Action: plan.ActionEmpty,
			Reason: "kubeadm's kubelet flags and config (the kubelet's root dir is " + k.RootDir + ")"})
	}
	p.Paths = append(p.Paths,
		paths.Spec{Path: "/var/log/pods", Action: plan.ActionEmpty, Reason: "pod logs written by the kubelet"},
		paths.Spec{Path: "/var/log/containers", Action: plan.ActionEmpty, Reason: "container log links written by the kubelet"},
		paths.Spec{Path: "/run/kubernetes", Action: plan.ActionRemove, Reason: "kube-apiserver's default cert dir"},
		paths.Spec{Path: "/run/secrets/kubernetes.io", Action: plan.ActionRemove, Reason: "service account token dir"},
		paths.Spec{Path: "/var/lib/dockershim", Action: plan.ActionRemove, Reason: "dockershim checkpoints"},
	)
	p.Evidence = append(sourcesEvidence("real paths from", k.Sources), p.Evidence...)
	if k.RootDir != defaultKubeletRoot {
		p.Evidence = append(p.Evidence, "kubelet --root-dir "+k.RootDir)
	}
	if spp != defaultStaticPodPath {
		p.Evidence = append(p.Evidence, "staticPodPath "+spp)
	}
	if etcdDir != defaultEtcdDataDir {
		p.Evidence = append(p.Evidence, "etcd --data-dir "+etcdDir)
	}
	return p, nil
}

// runtimeHints sets the CRI socket the kubelet uses and, for containerd,
// the state dir holding its pods' tasks; cri-dockerd means Docker.
func runtimeHints(h *host.Host, p *Profile, endpoint string) {
	p.CRISockets = []string{endpoint}
	if filepath.Base(endpoint) == "cri-dockerd.sock" {
		p.DockerSockets = []string{"/run/docker.sock"}
		return
	}
	c, err := ReadContainerd(h, "/etc/containerd/config.toml",
		Containerd{Root: "/var/lib/containerd", State: "/run/containerd", Socket: defaultRuntimeEndpoint})
	switch {
	case err != nil:
		// A hint only: say so rather than refuse the whole reset.
		p.Evidence = append(p.Evidence, "containerd state dir unknown: "+err.Error())
	case c.Socket == endpoint:
		p.RuntimeStateDirs = []string{c.k8sTaskDir()}
	}
}

// keepChild names the child of dir that holds sub (the static pod dir
// inside /etc/kubernetes, which the static-pod kind handles), or nil.
func keepChild(dir, sub string) []string {
	rel, err := filepath.Rel(dir, sub)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil
	}
	return []string{strings.Split(rel, "/")[0]}
}

// kubeadmFiles are what kubeadm itself writes into /etc/kubernetes, the
// names `kubeadm reset` cleans there; manifests is the static-pod kind's.
var kubeadmFiles = []string{"admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
	"controller-manager.conf", "scheduler.conf", "pki", "tmp"}

// kubeadmDefaults narrows the kubeadm profile for a host that shows no
// distribution at all. Nothing says /etc/kubernetes is kubeadm's there (it
// may hold an RKE1 leftover or the operator's notes), so only kubeadm's
// own names in it are backed up instead of the whole directory; and with
// no etcd static pod, /var/lib/etcd may be any etcd's, so it is left.
func kubeadmDefaults(p Profile) Profile {
	var specs []paths.Spec
	for _, s := range p.Paths {
		switch s.Path {
		case kubeadmEtc:
			for _, f := range kubeadmFiles {
				specs = append(specs, paths.Spec{Path: kubeadmEtc + "/" + f, Action: plan.ActionBackupRemove,
					Reason: "written by kubeadm (precious: backed up)"})
			}
		case defaultEtcdDataDir:
		default:
			specs = append(specs, s)
		}
	}
	p.Paths = specs
	return p
}
