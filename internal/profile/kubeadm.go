package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/internal/staticpods"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

var components = []string{"kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd"}

// Kubeadm returns the kubeadm profile for the host, reading the kubelet's
// config for its static pod path.
func Kubeadm(h *host.Host) (Profile, error) {
	p := Profile{
		Name:        "kubeadm",
		KubeletRoot: "/var/lib/kubelet",
		Ports: map[string][]int{
			"kubelet":                 {10250, 10248},
			"kube-apiserver":          {6443},
			"kube-controller-manager": {10257},
			"kube-scheduler":          {10259},
			"kube-proxy":              {10256, 10249},
			"etcd":                    {2379, 2380, 2381},
		},
		RejoinPorts: []int{10250, 10257, 10259, 6443, 2379, 2380},
		RejoinFiles: []string{"/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf", "/etc/kubernetes/pki/ca.crt"},
	}
	for _, c := range components {
		p.Units = append(p.Units, c+".service")
		p.Executables = append(p.Executables, "/usr/bin/"+c, "/usr/local/bin/"+c)
	}
	spp, err := staticPodPath(h, p.KubeletRoot)
	if err != nil {
		return Profile{}, err
	}
	p.StaticPodDirs = []string{spp}
	p.MountRoots = []string{p.KubeletRoot}
	p.Paths = []paths.Spec{
		{Path: "/etc/kubernetes", Action: plan.ActionBackupEmpty, Keep: []string{"manifests"},
			Reason: "kubeadm's kubeconfigs and PKI (precious: backed up)"},
		{Path: "/var/lib/etcd", Action: plan.ActionBackupEmpty, Reason: "etcd data of a stacked member (precious: backed up)"},
		{Path: p.KubeletRoot, Action: plan.ActionEmpty, Reason: "kubelet root dir"},
		{Path: "/var/log/pods", Action: plan.ActionEmpty, Reason: "pod logs written by the kubelet"},
		{Path: "/var/log/containers", Action: plan.ActionEmpty, Reason: "container log links written by the kubelet"},
		{Path: "/run/kubernetes", Action: plan.ActionRemove, Reason: "kube-apiserver's default cert dir"},
		{Path: "/run/secrets/kubernetes.io", Action: plan.ActionRemove, Reason: "service account token dir"},
		{Path: "/var/lib/dockershim", Action: plan.ActionRemove, Reason: "dockershim checkpoints"},
	}
	return p, nil
}

// staticPodPath reads staticPodPath from the kubelet's config; kubeadm's
// default when the config is absent or silent.
func staticPodPath(h *host.Host, kubeletRoot string) (string, error) {
	const def = "/etc/kubernetes/manifests"
	cfg := filepath.Join(kubeletRoot, "config.yaml")
	p, err := h.Resolve(cfg)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return "", fmt.Errorf("read kubelet config %s: %w", cfg, err)
	}
	spp, err := staticpods.StaticPodPath(b)
	if err != nil {
		return "", fmt.Errorf("kubelet config %s: %w", cfg, err)
	}
	if spp == "" {
		return def, nil
	}
	return filepath.Clean(spp), nil
}
