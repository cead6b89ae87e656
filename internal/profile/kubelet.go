package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/nodereset/nodereset/pkg/host"
)

// Kubelet defaults as the kubelet and kubeadm have them.
const (
	defaultKubeletRoot     = "/var/lib/kubelet"
	defaultStaticPodPath   = "/etc/kubernetes/manifests"
	defaultRuntimeEndpoint = "/run/containerd/containerd.sock"
	// kubeadm writes its flags and config here whatever --root-dir says.
	kubeadmFlagsFile  = "/var/lib/kubelet/kubeadm-flags.env"
	kubeadmConfigFile = "/var/lib/kubelet/config.yaml"
)

// Kubelet is what the kubelet on this host was told, read from where its
// installer put it, so that a custom --root-dir or staticPodPath is honoured.
type Kubelet struct {
	// RootDir is --root-dir.
	RootDir string
	// Config is the host path of --config ("" when none).
	Config string
	// StaticPodPath is from the config (or the deprecated
	// --pod-manifest-path); "" when neither sets it.
	StaticPodPath string
	// RuntimeEndpoint is the CRI socket's host path.
	RuntimeEndpoint string
	// Sources are where the values came from, for the plan's evidence.
	Sources []string
}

// kubeletConfig is the part of KubeletConfiguration the profile reads.
type kubeletConfig struct {
	StaticPodPath            string `json:"staticPodPath"`
	ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
}

// DiscoverKubelet reads the kubelet's flags from its systemd unit (with
// drop-ins, EnvironmentFile= and Environment=), or, without a unit, from
// kubeadm-flags.env and /etc/default/kubelet, then its config file.
func DiscoverKubelet(h *host.Host) (Kubelet, error) {
	args, sources, err := kubeletArgs(h)
	if err != nil {
		return Kubelet{}, err
	}
	k, err := kubeletFromArgs(h, args, kubeadmConfigFile)
	k.Sources = append(sources, k.Sources...)
	return k, err
}

// kubeletArgs assembles the kubelet's command line.
func kubeletArgs(h *host.Host) ([]string, []string, error) {
	u, ok, err := readUnit(h, "kubelet.service")
	if err != nil {
		return nil, nil, err
	}
	if ok {
		args, err := u.Args()
		return args, append([]string{u.File}, u.DropIns...), err
	}
	// No unit (a container image, a rescue root): kubeadm's two files in
	// the order its drop-in expands them.
	var args, sources []string
	for _, f := range []struct{ path, key string }{
		{kubeadmFlagsFile, "KUBELET_KUBEADM_ARGS"},
		{"/etc/default/kubelet", "KUBELET_EXTRA_ARGS"},
		{"/etc/sysconfig/kubelet", "KUBELET_EXTRA_ARGS"},
	} {
		env, err := readEnvFile(h, f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", f.path, err)
		}
		words, err := splitWords(env[f.key])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", f.path, f.key, err)
		}
		args, sources = append(args, words...), append(sources, f.path)
	}
	return args, sources, nil
}

// kubeletFromArgs applies kubelet flag semantics to args: flags win over
// the config file; defaultConfig is read when --config is absent and the
// file exists (kubeadm's, or K3s's generated one).
func kubeletFromArgs(h *host.Host, args []string, defaultConfig string) (Kubelet, error) {
	k := Kubelet{RootDir: defaultKubeletRoot}
	if v := lastFlag(args, "root-dir"); v != "" {
		k.RootDir = filepath.Clean(v)
	}
	k.Config = lastFlag(args, "config")
	if k.Config == "" && defaultConfig != "" {
		if _, err := os.Stat(resolveOr(h, defaultConfig)); err == nil {
			k.Config = defaultConfig
		}
	}
	if k.Config != "" {
		c, err := readKubeletConfig(h, k.Config)
		if err != nil {
			return k, err
		}
		k.Sources = append(k.Sources, k.Config)
		if c.StaticPodPath != "" {
			k.StaticPodPath = filepath.Clean(c.StaticPodPath)
		}
		k.RuntimeEndpoint = socketPath(c.ContainerRuntimeEndpoint)
	}
	if v := lastFlag(args, "pod-manifest-path"); v != "" {
		k.StaticPodPath = filepath.Clean(v)
	}
	if v := socketPath(lastFlag(args, "container-runtime-endpoint")); v != "" {
		k.RuntimeEndpoint = v
	}
	if k.RuntimeEndpoint == "" {
		k.RuntimeEndpoint = defaultRuntimeEndpoint
	}
	return k, nil
}

func readKubeletConfig(h *host.Host, p string) (kubeletConfig, error) {
	var c kubeletConfig
	b, err := os.ReadFile(resolveOr(h, p))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil // named but gone: the defaults apply
	}
	if err != nil {
		return c, fmt.Errorf("read kubelet config %s: %w", p, err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("kubelet config %s: %w (fix or remove it)", p, err)
	}
	return c, nil
}
