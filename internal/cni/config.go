// Package cni is the kind "cni-file": the files a Kubernetes CNI plugin
// wrote on the host. The CNI config directory (/etc/cni/net.d) and the
// libcni state directory (/var/lib/cni) are shared with podman and CRI-O
// (kubeadm#1822), so nothing is chosen by file name or by directory: every
// config file is parsed and owned only when its plugin types or network name
// say a Kubernetes network plugin wrote it; IPAM leases and cached results are
// owned only for exactly those networks.
package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Config is what a CNI config file (.conf or .conflist) says about who
// wrote it.
type Config struct {
	// Path is the host-side path of the file.
	Path string
	// Name is the network name ("cbr0", "k8s-pod-network").
	Name string
	// Types are the plugin types, in chain order.
	Types []string
	// Bridges are the "bridge" fields of bridge-type plugins: the Linux
	// bridges this network creates.
	Bridges []string
	// Kubeconfigs are the kubeconfig paths the plugins reference
	// (Calico's calico-kubeconfig, multus'), host-side.
	Kubeconfigs []string
	// Owner names the Kubernetes network plugin that wrote the file, or is
	// "" when the file belongs to someone else.
	Owner string
}

// Owned reports whether a Kubernetes network plugin wrote the config.
func (c Config) Owned() bool { return c.Owner != "" }

// pluginOwner names the Kubernetes network add-on that installs a CNI
// plugin type, or "" for a generic plugin (bridge, host-local, portmap...).
// A switch, not a map: no package-level state.
func pluginOwner(typ string) string {
	switch typ {
	case "flannel":
		return "flannel"
	case "calico", "calico-ipam":
		return "calico"
	case "cilium-cni":
		return "cilium"
	case "weave-net":
		return "weave"
	case "multus", "multus-shim":
		return "multus"
	case "antrea":
		return "antrea"
	case "kube-ovn":
		return "kube-ovn"
	case "ovn-k8s-cni-overlay":
		return "ovn-kubernetes"
	case "aws-cni", "egress-cni":
		return "aws-vpc-cni"
	}
	return ""
}

// bridgeNetworkOwner names who writes a bridge config under a network
// name: kubeadm's and flannel's documented cbr0, Calico's k8s-pod-network.
func bridgeNetworkOwner(name string) string {
	switch name {
	case "cbr0":
		return "kubernetes bridge (cbr0)"
	case "k8s-pod-network":
		return "calico"
	}
	return ""
}

// bridgeDeviceOwner names who owns a bridge device a config names:
// kube-router's config is called "mynet" but always uses kube-bridge.
func bridgeDeviceOwner(dev string) string {
	if dev == "kube-bridge" {
		return "kube-router"
	}
	return ""
}

// isForeignNetwork: the network names of the container engines that share
// the directory; a config with one is never owned, whatever else it says.
func isForeignNetwork(name string) bool {
	switch name {
	case "podman", "crio", "crio-loopback", "cni-loopback":
		return true
	}
	return false
}

// rawPlugin is the part of a plugin config that says who wrote it.
type rawPlugin struct {
	Type       string `json:"type"`
	Bridge     string `json:"bridge"`
	Kubeconfig string `json:"kubeconfig"`
	Kubernetes struct {
		Kubeconfig string `json:"kubeconfig"`
	} `json:"kubernetes"`
	// Delegate is flannel's and multus' nested plugin.
	Delegate *rawPlugin `json:"delegate"`
}

type rawConfig struct {
	rawPlugin
	Name    string      `json:"name"`
	Plugins []rawPlugin `json:"plugins"`
}

// ErrNotCNI marks a file that is not a CNI network config.
var ErrNotCNI = errors.New("not a CNI network config")

// Parse reads one config file's content. path is the host-side path; it
// only fills Config.Path. A file that is not JSON or has neither a type nor
// plugins fails with an error wrapping ErrNotCNI.
func Parse(path string, data []byte) (Config, error) {
	var raw rawConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("%s: %w: %v", path, ErrNotCNI, err)
	}
	plugins := raw.Plugins
	if len(plugins) == 0 {
		if raw.Type == "" {
			return Config{}, fmt.Errorf("%s: %w: no \"type\" and no \"plugins\"", path, ErrNotCNI)
		}
		plugins = []rawPlugin{raw.rawPlugin}
	}
	c := Config{Path: path, Name: raw.Name}
	var walk func(p rawPlugin)
	walk = func(p rawPlugin) {
		if p.Type != "" {
			c.Types = append(c.Types, p.Type)
		}
		if p.Type == "bridge" && p.Bridge != "" && !slices.Contains(c.Bridges, p.Bridge) {
			c.Bridges = append(c.Bridges, p.Bridge)
		}
		for _, k := range []string{p.Kubeconfig, p.Kubernetes.Kubeconfig} {
			if k != "" && filepath.IsAbs(k) && !slices.Contains(c.Kubeconfigs, filepath.Clean(k)) {
				c.Kubeconfigs = append(c.Kubeconfigs, filepath.Clean(k))
			}
		}
		if p.Delegate != nil {
			walk(*p.Delegate)
		}
	}
	for _, p := range plugins {
		walk(p)
	}
	c.Owner = classify(c)
	return c, nil
}

// classify names the Kubernetes plugin that wrote c, or "".
func classify(c Config) string {
	if isForeignNetwork(c.Name) {
		return ""
	}
	for _, t := range c.Types {
		if o := pluginOwner(t); o != "" {
			return o
		}
	}
	if o := bridgeNetworkOwner(c.Name); o != "" && slices.Contains(c.Types, "bridge") {
		return o
	}
	for _, b := range c.Bridges {
		if o := bridgeDeviceOwner(b); o != "" {
			return o
		}
	}
	return ""
}

// isConfigName reports whether libcni would load a file of that name.
func isConfigName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".conf", ".conflist", ".json":
		return true
	}
	return false
}
