package profile

import (
	"slices"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/host"
)

// TestResolveRecorded: on a host with no evidence left, the profile the
// last run recorded is used instead of kubeadm's defaults; with no record,
// the defaults own only kubeadm's own files.
func TestResolveRecorded(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/kubernetes/README.local", "notes\n")
	h, _ := host.New(root)
	rke1, err := RKE1(h)
	if err != nil {
		t.Fatal(err)
	}
	rke1.Evidence = []string{"recorded by the last run in /var/lib/nodereset/backups"}
	for _, tc := range []struct {
		name     string
		c        Choice
		want     string
		owned    []string
		notOwned []string
	}{
		{"recorded profile counts", Choice{Recorded: &rke1}, "rke1", []string{"/etc/kubernetes/ssl", "/opt/rke"}, []string{"/etc/kubernetes"}},
		{"no evidence: kubeadm's own files only", Choice{}, "kubeadm",
			[]string{"/etc/kubernetes/admin.conf", "/etc/kubernetes/pki", "/var/lib/kubelet"}, []string{"/etc/kubernetes", "/var/lib/etcd"}},
		{"--profile ignores the record", Choice{Names: []string{"kubeadm"}, Force: true, Recorded: &rke1}, "kubeadm",
			[]string{"/etc/kubernetes", "/var/lib/etcd"}, []string{"/opt/rke"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Resolve(h, tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tc.want {
				t.Errorf("profile %q, want %q (evidence %q)", p.Name, tc.want, p.Evidence)
			}
			sp := specPaths(p)
			for _, o := range tc.owned {
				if _, ok := sp[o]; !ok {
					t.Errorf("%s is not owned", o)
				}
			}
			for _, o := range tc.notOwned {
				if a, ok := sp[o]; ok {
					t.Errorf("%s is owned (%s)", o, a)
				}
			}
		})
	}
}

// TestLeftoverWarnings: a profile seen only in files is warned about,
// naming the files and the --profile that leaves them; RKE1, which files
// are all there is to see of, only beside a live distribution.
func TestLeftoverWarnings(t *testing.T) {
	live := Profile{Name: "rke2", Evidence: []string{"rke2: unit rke2-server.service (/usr/local/lib/systemd/system/rke2-server.service)"}}
	k3s := Profile{Name: "k3s", leftover: true, Evidence: []string{"k3s: found /var/lib/rancher/k3s/server", "k3s: real paths from /etc/rancher/k3s/config.yaml"}}
	rke1 := Profile{Name: "rke1", leftover: true, filesOnly: true, Evidence: []string{"rke1: found /opt/rke/etcd-snapshots"}}
	for _, tc := range []struct {
		name     string
		detected []Profile
		names    []string
		want     []string // substrings, one warning each
	}{
		{"k3s leftovers beside rke2", []Profile{live, k3s}, nil,
			[]string{"profile k3s is detected only from files (/var/lib/rancher/k3s/server): no unit, process or binary of k3s", "pass --profile rke2 to leave them alone, or --profile rke2,k3s"}},
		{"k3s leftovers alone", []Profile{k3s}, nil, []string{"profile k3s is detected only from files", "pass --profile k3s to confirm"}},
		{"rke1 alone: files are all it shows", []Profile{rke1}, nil, nil},
		{"rke1 files beside rke2", []Profile{live, rke1}, nil, []string{"profile rke1 is detected only from files (/opt/rke/etcd-snapshots)"}},
		{"chosen by --profile", []Profile{live, k3s}, []string{"rke2", "k3s"}, nil},
		{"nothing left over", []Profile{live}, nil, nil},
		{"a recorded merge is named one by one", []Profile{{Name: "rke2+rancher", Evidence: []string{"rke2+rancher: recorded by the last run"}}, k3s}, nil,
			[]string{"pass --profile rke2,rancher to leave them alone, or --profile rke2,rancher,k3s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Select(tc.detected, tc.names, false)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(p.Warnings, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("warnings lack %q:\n%s", w, all)
				}
			}
			if tc.want == nil && len(p.Warnings) > 0 {
				t.Errorf("unexpected warnings:\n%s", all)
			}
		})
	}
}

// TestDetectLeftover: files only make a profile a leftover; a unit, a
// running or (for kubeadm) an installed binary make it live.
func TestDetectLeftover(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/usr/local/lib/systemd/system/rke2-server.service", "[Service]\nExecStart=/usr/local/bin/rke2 server\n")
	write(t, root, "/var/lib/rancher/k3s/server/token", "K10old\n")
	write(t, root, "/usr/bin/kubeadm", "x")
	h, _ := host.New(root)
	ps, err := Detect(h, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range ps {
		if len(p.Evidence) > 0 {
			got[p.Name] = p.leftover
		}
	}
	want := map[string]bool{"rke2": false, "k3s": true, "kubeadm": false}
	for n, l := range want {
		if g, ok := got[n]; !ok || g != l {
			t.Errorf("%s: detected %v leftover %v, want leftover %v", n, ok, g, l)
		}
	}
	for _, p := range ps {
		if p.Name == "kubeadm" && !slices.Contains(p.Evidence, "kubeadm: installed /usr/bin/kubeadm") {
			t.Errorf("kubeadm evidence %q", p.Evidence)
		}
	}
}

// TestKeepEnabled: kubeadm's kubelet.service is only stopped (kubeadm
// join expects it enabled); --uninstall disables it too; K3s's units are
// the install script's and are disabled.
func TestKeepEnabled(t *testing.T) {
	h, _ := host.New(t.TempDir())
	kp, err := Kubeadm(h)
	if err != nil {
		t.Fatal(err)
	}
	if kp.KeepEnabled["kubelet.service"] == "" || kp.KeepEnabled["etcd.service"] != "" {
		t.Errorf("kubeadm KeepEnabled %v, want kubelet.service only", kp.KeepEnabled)
	}
	spray, err := Kubespray(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := spray.KeepEnabled["kubelet.service"]; !ok {
		t.Errorf("kubespray lost kubeadm's kubelet.service: %v", spray.KeepEnabled)
	}
	u, err := Uninstall(h, kp)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.KeepEnabled) != 0 || len(kp.KeepEnabled) == 0 {
		t.Errorf("uninstall KeepEnabled %v (given %v), want none", u.KeepEnabled, kp.KeepEnabled)
	}
	k3s, err := K3s(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(k3s.KeepEnabled) != 0 {
		t.Errorf("k3s KeepEnabled %v", k3s.KeepEnabled)
	}
}
