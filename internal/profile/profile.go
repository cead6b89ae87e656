// Package profile says what a Kubernetes distribution owns on a host and
// turns that into the engine's phases. Only kubeadm exists today; the
// distributions issue adds detection and the others (K3s, RKE2, ...), each a
// Profile value, without touching the engine or the kinds.
package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nodereset/nodereset/internal/mounts"
	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/internal/preflight"
	"github.com/nodereset/nodereset/internal/procs"
	"github.com/nodereset/nodereset/internal/services"
	"github.com/nodereset/nodereset/internal/staticpods"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Profile is what one distribution owns. All paths are host-side.
type Profile struct {
	Name string
	// Units are systemd units to stop and disable.
	Units []string
	// Executables are component binaries; a process running one is owned.
	Executables []string
	// Ports maps a component name to its exact ports: a process with that
	// executable name listening there is owned wherever it was installed.
	Ports map[string][]int
	// KubeletRoot is the kubelet's --root-dir.
	KubeletRoot string
	// StaticPodDirs are the kubelet's static pod paths.
	StaticPodDirs []string
	// MountRoots: every mount strictly below one is owned.
	MountRoots []string
	// Paths are files and directories to remove or back up.
	Paths []paths.Spec
	// RejoinPorts must be free for a join to pass preflight.
	RejoinPorts []int
	// RejoinFiles must not exist for a join to pass preflight.
	RejoinFiles []string
}

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

// Options are the user's choices that change how kinds act.
type Options struct {
	Backup      bool
	LazyUnmount bool
	Parallel    int
	TermTimeout time.Duration
	KillTimeout time.Duration
	StopTimeout time.Duration
	MountInfo   string
}

// Phase names, in the order they run.
const (
	PhaseServices   = "stop services"
	PhaseStaticPods = "remove static pods"
	PhaseProcesses  = "stop processes"
	PhaseMounts     = "unmount"
	PhasePaths      = "remove files"
)

// Phases turns a profile into the engine's ordered phases. Services go
// first so that systemd does not restart what is killed next; static pod
// manifests before processes so that a kubelet that survives cannot start
// them again; mounts before files so that nothing is removed through a
// mount (the path kind also refuses to cross one).
func Phases(p Profile, o Options) []engine.Phase {
	return []engine.Phase{
		{Name: PhaseServices, Kinds: []engine.Kind{services.New(services.Options{Units: p.Units, StopTimeout: o.StopTimeout})}},
		{Name: PhaseStaticPods, Kinds: []engine.Kind{staticpods.New(staticpods.Options{Dirs: p.StaticPodDirs, Backup: o.Backup})}},
		{Name: PhaseProcesses, Kinds: []engine.Kind{procs.New(procs.Options{
			Executables: p.Executables, Ports: p.Ports, TermTimeout: o.TermTimeout, KillTimeout: o.KillTimeout,
		})}},
		{Name: PhaseMounts, Kinds: []engine.Kind{mounts.New(mounts.Options{
			Roots: p.MountRoots, Lazy: o.LazyUnmount, Parallel: o.Parallel, MountInfo: o.MountInfo,
		})}},
		{Name: PhasePaths, Kinds: []engine.Kind{paths.New(paths.Options{Specs: p.Paths, Backup: o.Backup})}},
	}
}

// Checks are the profile's rejoin checks for verify.
func Checks(p Profile) []engine.Check {
	return []engine.Check{
		preflight.Ports(p.RejoinPorts),
		preflight.FilesAbsent(p.RejoinFiles),
		preflight.DirsEmpty(p.StaticPodDirs),
	}
}
