// Package profile says what a Kubernetes distribution owns on a host and
// turns that into the engine's phases. Each distribution is a Profile value
// (kubeadm.go, ...); phases.go maps a profile onto the kinds. Neither the
// engine nor the kinds know about distributions.
package profile

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nodereset/nodereset/internal/paths"
)

// Profile is what one distribution owns. All paths are host-side.
type Profile struct {
	Name string
	// Evidence says why the profile was chosen (files, units, processes
	// found); shown in the plan.
	Evidence []string
	// Warnings are what selection noticed that the operator should decide
	// about (a profile seen only in leftover files); shown with the plan's
	// warnings, not recorded with the run.
	Warnings []string `json:"-"`
	// Units are systemd units to stop and disable.
	Units []string
	// KeepEnabled are units of Units that are only stopped, each with why
	// it stays enabled: a package owns it and the next join expects it
	// enabled (kubeadm's kubelet.service, which kubeadm reset leaves
	// enabled). Uninstall disables them too.
	KeepEnabled map[string]string
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

	// CRISockets are CRI endpoints (unix socket host paths) to look for
	// Kubernetes pods on; ContainerdNamespace is the kubelet's ("k8s.io").
	CRISockets []string
	// DockerSockets are Docker Engine API sockets (RKE1, cri-dockerd).
	DockerSockets []string
	// RuntimeStateDirs hold runtime state whose mounts the kubelet's pods
	// own (e.g. /run/containerd/io.containerd.runtime.v2.task/k8s.io).
	RuntimeStateDirs []string
	// CNIConfDir is where the CNI config lives; CNIStateDirs hold the CNI
	// plugins' state (/var/lib/cni, /run/flannel, /var/lib/calico ...).
	CNIConfDir   string
	CNIStateDirs []string
	// ServiceCIDRs bound the IPVS services that are Kubernetes Services;
	// ClusterCIDRs are the pod networks (flannel's masquerade rules).
	ServiceCIDRs []string
	ClusterCIDRs []string
	// EmbeddedRuntime is set when the CRI runtime is the distribution's own
	// (K3s, RKE2): its state goes with the profile's paths, so sandboxes it
	// still held when it was down need no CNI config to be removed later.
	EmbeddedRuntime bool

	// leftover: detected from files only (no unit, process or installed
	// binary); filesOnly: files are all detection can see of it (Detect).
	leftover, filesOnly bool
}

// Merge composes profiles present on one host (e.g. rke2 + rancher): lists
// are concatenated without duplicates, the first non-empty scalar wins.
func Merge(ps ...Profile) Profile {
	var out Profile
	if len(ps) == 0 {
		return out
	}
	out.Ports = map[string][]int{}
	var names []string
	for _, p := range ps {
		for u, why := range p.KeepEnabled {
			if out.KeepEnabled == nil {
				out.KeepEnabled = map[string]string{}
			}
			if _, ok := out.KeepEnabled[u]; !ok {
				out.KeepEnabled[u] = why
			}
		}
	}
	for _, p := range ps {
		names = appendNew(names, strings.Split(p.Name, "+")...)
		out.Name = strings.Join(names, "+")
		out.Evidence = appendNew(out.Evidence, p.Evidence...)
		out.Warnings = appendNew(out.Warnings, p.Warnings...)
		out.Units = appendNew(out.Units, p.Units...)
		out.Executables = appendNew(out.Executables, p.Executables...)
		for c, ports := range p.Ports {
			out.Ports[c] = appendNew(out.Ports[c], ports...)
		}
		if out.KubeletRoot == "" {
			out.KubeletRoot = p.KubeletRoot
		}
		out.StaticPodDirs = appendNew(out.StaticPodDirs, p.StaticPodDirs...)
		out.MountRoots = appendNew(out.MountRoots, p.MountRoots...)
		for _, s := range p.Paths {
			if !hasSpec(out.Paths, s.Path) {
				out.Paths = append(out.Paths, s)
			}
		}
		out.RejoinPorts = appendNew(out.RejoinPorts, p.RejoinPorts...)
		out.RejoinFiles = appendNew(out.RejoinFiles, p.RejoinFiles...)
		out.CRISockets = appendNew(out.CRISockets, p.CRISockets...)
		out.DockerSockets = appendNew(out.DockerSockets, p.DockerSockets...)
		out.RuntimeStateDirs = appendNew(out.RuntimeStateDirs, p.RuntimeStateDirs...)
		if out.CNIConfDir == "" {
			out.CNIConfDir = p.CNIConfDir
		}
		out.CNIStateDirs = appendNew(out.CNIStateDirs, p.CNIStateDirs...)
		out.ServiceCIDRs = appendNew(out.ServiceCIDRs, p.ServiceCIDRs...)
		out.ClusterCIDRs = appendNew(out.ClusterCIDRs, p.ClusterCIDRs...)
		out.EmbeddedRuntime = out.EmbeddedRuntime || p.EmbeddedRuntime
	}
	return out
}

func appendNew[T comparable](dst []T, src ...T) []T {
	for _, s := range src {
		if !contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

func contains[T comparable](xs []T, x T) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func hasSpec(specs []paths.Spec, p string) bool {
	for _, s := range specs {
		if s.Path == p {
			return true
		}
	}
	return false
}

// sharedDirs hold other software's state besides Kubernetes'. A profile
// whose kubelet root, manifest dir, mount root or owned path is one of them
// (a kubelet run with --root-dir=/var/lib, an etcd data dir of /data) would
// empty or unmount the host's own; such a profile is refused.
var sharedDirs = map[string]bool{
	"/var/lib": true, "/var/log": true, "/var/run": true, "/var/cache": true, "/var/spool": true,
	"/usr/lib": true, "/usr/local": true, "/usr/local/bin": true, "/usr/local/lib": true, "/usr/bin": true,
	"/etc/systemd": true, "/etc/systemd/system": true, "/etc/default": true, "/etc/cni": true,
	"/var/lib/rancher": true, "/etc/rancher": true, "/var/lib/docker": true, "/var/lib/containerd": true,
	"/run/containerd": true, "/opt/cni": true, "/home": true,
}

// IsShared says whether dir is the root, a top-level directory (/var,
// /data, /srv ...) or a known shared directory.
func IsShared(dir string) bool {
	dir = filepath.Clean(dir)
	return strings.Count(dir, "/") <= 1 || sharedDirs[dir]
}

// CheckShared refuses a profile that would empty, unmount below or remove a
// shared directory; the error names the path and where it came from.
func (p Profile) CheckShared() error {
	check := func(what, dir string) error {
		if dir != "" && IsShared(dir) {
			return fmt.Errorf("%s %s of profile %s is a shared directory: nodereset will not empty or unmount it; check the distribution's configuration (for the kubelet: --root-dir)", what, dir, p.Name)
		}
		return nil
	}
	errs := []error{check("kubelet root dir", p.KubeletRoot)}
	for _, d := range p.StaticPodDirs {
		errs = append(errs, check("static pod dir", d))
	}
	for _, d := range p.MountRoots {
		errs = append(errs, check("mount root", d))
	}
	for _, s := range p.Paths {
		errs = append(errs, check("owned path", s.Path))
	}
	for _, d := range append(append([]string{}, p.RuntimeStateDirs...), p.CNIStateDirs...) {
		errs = append(errs, check("state dir", d))
	}
	return errors.Join(errs...)
}
