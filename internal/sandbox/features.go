package sandbox

import (
	"fmt"
	"sort"
	"strings"
)

// feature is an optional part of a sandbox node, planted after the
// profile's layout. plant writes files, mounts and links (through the
// builder, recording Expected items and Decoys); start runs after the
// component processes, for daemons and pods, and returns how to stop them.
// Each feature lives in a file of its own.
type feature struct {
	plant func(b *builder)
	start func(b *builder, self []byte) (stop func(), err error)
}

// features lists every feature by name. Read-only; add a case per feature.
func featureByName(name string) (feature, bool) {
	switch name {
	case "network":
		return feature{plant: func(b *builder) { plantNetwork(b); plantFirewall(b) }, start: startNetwork}, true
	case "containerd":
		return feature{start: startContainerd}, true
	case "docker":
		return feature{start: startDocker}, true
	}
	return feature{}, false
}

// Features names the features a sandbox can have.
func Features() []string { return []string{"containerd", "docker", "network"} }

func lookupFeatures(names []string) ([]feature, error) {
	var out []feature
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		f, ok := featureByName(n)
		if !ok {
			return nil, fmt.Errorf("unknown sandbox feature %q (known: %s)", n, strings.Join(Features(), ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// stateProbe returns the probe of a decoy state: it runs inside the
// sandbox's namespaces and prints the decoys' state as canonical text
// (sorted, without counters or times). A feature records a probe's output
// in Decoys.States when it plants the decoys; Check runs it again.
func stateProbe(name string) (func(m Manifest) (string, error), bool) {
	switch name {
	case "links":
		return probeLinks, true
	case "firewall":
		return probeFirewall, true
	case "containerd":
		return probeContainerd, true
	case "docker":
		return probeDocker, true
	}
	return nil, false
}

// layoutFunc plants one distribution's node.
type layoutFunc func(b *builder, pods, volumes int)

// profileLayout returns a distribution's layout (layout_<profile>.go);
// the processes it runs are profileProcSpecs(name).
func profileLayout(name string) (layoutFunc, error) {
	switch name {
	case "", "kubeadm":
		return buildLayout, nil
	case "kubespray":
		return layoutKubespray, nil
	case "rke1":
		return layoutRKE1, nil
	case "rke2":
		return layoutRKE2, nil
	case "k3s":
		return layoutK3s, nil
	case "k3s-custom":
		return layoutK3sCustom, nil
	case "rancher":
		return layoutRancher, nil
	}
	return nil, fmt.Errorf("unknown sandbox profile %q (known: %s)", name, strings.Join(Profiles(), ", "))
}

// Profiles names the distribution layouts a sandbox can plant. A name is
// the nodereset profile it is built for, except k3s-custom (K3s with a
// data dir from config.yaml.d and a custom kubelet root) and rke2 (which
// carries K3s leftovers that --profile rke2 must not touch).
func Profiles() []string {
	p := []string{"kubeadm", "kubespray", "rke1", "rke2", "k3s", "k3s-custom", "rancher"}
	sort.Strings(p)
	return p
}
