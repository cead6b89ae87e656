package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/nodereset/nodereset/pkg/host"
)

const defaultEtcdDataDir = "/var/lib/etcd"

// staticPod is the part of a static pod manifest the profile reads.
type staticPod struct {
	Spec struct {
		Containers []struct {
			Name    string   `json:"name"`
			Command []string `json:"command"`
			Args    []string `json:"args"`
		} `json:"containers"`
		Volumes []struct {
			Name     string `json:"name"`
			HostPath *struct {
				Path string `json:"path"`
			} `json:"hostPath"`
		} `json:"volumes"`
	} `json:"spec"`
}

// readStaticPod parses dir/file; ok is false when it does not exist.
func readStaticPod(h *host.Host, dir, file string) (staticPod, bool, error) {
	var pod staticPod
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(resolveOr(h, p))
	if errors.Is(err, fs.ErrNotExist) {
		return pod, false, nil
	}
	if err != nil {
		return pod, false, fmt.Errorf("read static pod %s: %w", p, err)
	}
	if err := yaml.Unmarshal(b, &pod); err != nil {
		return pod, false, fmt.Errorf("static pod %s: %w", p, err)
	}
	return pod, true, nil
}

// args is the command line of the named container.
func (p staticPod) args(container string) []string {
	for _, c := range p.Spec.Containers {
		if c.Name == container {
			return append(append([]string{}, c.Command...), c.Args...)
		}
	}
	return nil
}

// EtcdDataDir returns etcd's data dir from the etcd static pod manifest in
// staticPodDir (kubeadm's etcd.yaml), or "" when there is no manifest or it
// names none. --data-dir is a path inside the container; the etcd-data
// hostPath volume is the host path behind it, so it wins when present
// (kubeadm mounts one path at the same place).
func EtcdDataDir(h *host.Host, staticPodDir string) (string, error) {
	pod, ok, err := readStaticPod(h, staticPodDir, "etcd.yaml")
	if !ok || err != nil {
		return "", err
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == "etcd-data" && v.HostPath != nil && v.HostPath.Path != "" {
			return filepath.Clean(v.HostPath.Path), nil
		}
	}
	if d := lastFlag(pod.args("etcd"), "data-dir"); d != "" {
		return filepath.Clean(d), nil
	}
	return "", nil
}

// serviceCIDRs returns kube-apiserver's --service-cluster-ip-range from its
// static pod manifest, or nil.
func serviceCIDRs(h *host.Host, staticPodDir string) ([]string, error) {
	pod, ok, err := readStaticPod(h, staticPodDir, "kube-apiserver.yaml")
	if !ok || err != nil {
		return nil, err
	}
	return splitList(lastFlag(pod.args("kube-apiserver"), "service-cluster-ip-range")), nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
