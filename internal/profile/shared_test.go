package profile

import (
	"strings"
	"testing"

	"github.com/nodereset/nodereset/internal/paths"
)

func TestCheckShared(t *testing.T) {
	tests := []struct {
		name string
		p    Profile
		bad  string // "" = accepted
	}{
		{"kubeadm defaults", Profile{KubeletRoot: "/var/lib/kubelet", MountRoots: []string{"/var/lib/kubelet"},
			StaticPodDirs: []string{"/etc/kubernetes/manifests"}, Paths: []paths.Spec{{Path: "/etc/kubernetes"}, {Path: "/var/lib/etcd"}}}, ""},
		{"kubelet root is /var/lib", Profile{KubeletRoot: "/var/lib"}, "kubelet root dir /var/lib"},
		{"kubelet root on a data disk", Profile{KubeletRoot: "/data"}, "kubelet root dir /data"},
		{"mount root /", Profile{MountRoots: []string{"/"}}, "mount root /"},
		{"etcd data dir /srv", Profile{Paths: []paths.Spec{{Path: "/srv/"}}}, "owned path /srv/"},
		{"rancher's parent", Profile{Paths: []paths.Spec{{Path: "/var/lib/rancher"}}}, "owned path /var/lib/rancher"},
		{"a child of rancher's is fine", Profile{Paths: []paths.Spec{{Path: "/var/lib/rancher/k3s"}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.CheckShared()
			switch {
			case tc.bad == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
				t.Errorf("err %v, want one naming %q", err, tc.bad)
			}
		})
	}
}
