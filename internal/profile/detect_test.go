package profile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// fakeProc is a procfs stand-in: PID/exe links to files under the host
// root, which is all detection reads.
func fakeProc(t *testing.T, h *host.Host, exes map[int]string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, exe := range exes {
		d := filepath.Join(dir, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(h.Path(exe), filepath.Join(d, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	// Not a PID, and a process whose exe is unreadable: both skipped.
	_ = os.MkdirAll(filepath.Join(dir, "self"), 0o755)
	_ = os.MkdirAll(filepath.Join(dir, "77"), 0o755)
	return dir
}

func detected(ps []Profile) []string {
	var out []string
	for _, p := range ps {
		if len(p.Evidence) > 0 {
			out = append(out, p.Name)
		}
	}
	return out
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		host  string
		procs map[int]string
		want  []string
		// evidence lines that must appear
		evidence []string
	}{
		{"kubeadm", map[int]string{100: "/usr/bin/kubelet"}, []string{"kubeadm"},
			[]string{"kubeadm: unit kubelet.service (/lib/systemd/system/kubelet.service)", "kubeadm: process 100 runs /usr/bin/kubelet",
				"kubeadm: found /etc/kubernetes/kubelet.conf"}},
		{"kubeadm-custom", nil, []string{"kubeadm"}, []string{"kubeadm: kubelet --root-dir /data/kubelet", "kubeadm: etcd --data-dir /data/etcd"}},
		{"k3s-custom", map[int]string{42: "/srv/k3s/data/abc123/bin/containerd"}, []string{"k3s"},
			[]string{"k3s: process 42 runs /srv/k3s/data/abc123/bin/k3s", "k3s: installed /usr/local/bin/k3s",
				"k3s: found /srv/k3s/server", "k3s: data-dir /srv/k3s (not the default /var/lib/rancher/k3s)"}},
		{"rke2-flag", nil, []string{"rke2"}, []string{"rke2: unit rke2-server.service (/usr/local/lib/systemd/system/rke2-server.service)"}},
		{"kubespray", nil, []string{"kubeadm", "kubespray"}, []string{"kubespray: found /etc/etcd.env", "kubeadm: kubelet --root-dir /srv/kubelet"}},
		{"empty", nil, nil, nil},
	} {
		t.Run(tc.host, func(t *testing.T) {
			h := testHost(t, tc.host)
			ps, err := Detect(h, fakeProc(t, h, tc.procs))
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != len(Names()) {
				t.Fatalf("%d profiles, want one per known name", len(ps))
			}
			if got := detected(ps); !slices.Equal(got, tc.want) {
				t.Errorf("detected %q, want %q", got, tc.want)
			}
			var all []string
			for _, p := range ps {
				all = append(all, p.Evidence...)
			}
			for _, e := range tc.evidence {
				if !slices.Contains(all, e) {
					t.Errorf("evidence %q missing from\n%s", e, strings.Join(all, "\n"))
				}
			}
		})
	}
}

func TestDetectReportsBrokenConfig(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/rancher/rke2/config.yaml", "data-dir: [unclosed\n")
	h, _ := host.New(root)
	_, err := Detect(h, t.TempDir())
	var de *DetectError
	if !errors.As(err, &de) || de.Profile != "rke2" {
		t.Fatalf("err = %v, want a DetectError for rke2", err)
	}
	// Resolve: fatal without --profile, irrelevant with --profile kubeadm.
	if _, err := Resolve(h, Choice{}); err == nil {
		t.Error("Resolve without names ignored a broken rke2 config")
	}
	if p, err := Resolve(h, Choice{Names: []string{"kubeadm"}, Force: true}); err != nil || p.Name != "kubeadm" {
		t.Errorf("Resolve --profile kubeadm --force: %q, %v", p.Name, err)
	}
}

func TestSelect(t *testing.T) {
	ps := []Profile{
		{Name: "kubeadm"},
		{Name: "rke2", Evidence: []string{"rke2: unit"}, Units: []string{"rke2-server.service"}},
		{Name: "k3s"},
		{Name: "rancher", Evidence: []string{"rancher: unit"}, Units: []string{"rancher-system-agent.service"}},
	}
	for _, tc := range []struct {
		name     string
		detected []Profile
		names    []string
		force    bool
		want     string
		err      error
		errText  string
	}{
		{"all detected merge", ps, nil, false, "rke2+rancher", nil, ""},
		{"restrict to one", ps, []string{"rke2"}, false, "rke2", nil, ""},
		{"not detected", ps, []string{"k3s"}, false, "", ErrProfileMismatch, "detected: rke2, rancher"},
		{"not detected, forced", ps, []string{"k3s"}, true, "k3s", nil, ""},
		{"unknown", ps, []string{"openshift"}, true, "", nil, "unknown profile"},
		{"nothing detected: kubeadm defaults", ps[:1], nil, false, "kubeadm", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Select(tc.detected, tc.names, tc.force)
			switch {
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Fatalf("err = %v, want %v", err, tc.err)
			case tc.errText != "" && (err == nil || !strings.Contains(err.Error(), tc.errText)):
				t.Fatalf("err = %v, want one saying %q", err, tc.errText)
			case tc.err == nil && tc.errText == "" && err != nil:
				t.Fatal(err)
			}
			if p.Name != tc.want {
				t.Errorf("profile %q, want %q", p.Name, tc.want)
			}
			if tc.want != "" && len(p.Evidence) == 0 {
				t.Error("selected profile has no evidence to show")
			}
		})
	}
}

func write(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUninstall(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"/usr/local/bin/k3s", "/usr/local/bin/k3s-uninstall.sh", "/usr/local/bin/k3s-killall.sh",
		"/usr/local/bin/crictl", "/etc/systemd/system/k3s.service", "/var/lib/rancher/k3s/server/token"} {
		write(t, root, f, "x")
	}
	if err := os.Symlink("k3s", filepath.Join(root, "/usr/local/bin/kubectl")); err != nil {
		t.Fatal(err)
	}
	// A package owns the killall script here: it must stay.
	write(t, root, "/var/lib/dpkg/info/k3s-tools.list", "/.\n/usr\n/usr/local/bin/k3s-killall.sh\n")
	h, _ := host.New(root)
	p, err := K3s(h)
	if err != nil {
		t.Fatal(err)
	}
	u, err := Uninstall(h, p)
	if err != nil {
		t.Fatal(err)
	}
	sp := specPaths(u)
	for _, want := range []string{"/usr/local/bin/k3s", "/usr/local/bin/k3s-uninstall.sh", "/usr/local/bin/kubectl",
		"/etc/systemd/system/k3s.service", "/etc/systemd/system/k3s.service.env", "/var/lib/rancher/k3s/data"} {
		if sp[want] != plan.ActionRemove {
			t.Errorf("uninstall: %s action %q, want remove", want, sp[want])
		}
	}
	for _, never := range []string{"/usr/local/bin/k3s-killall.sh", "/usr/local/bin/crictl", "/var/lib/rancher/k3s", "/usr/lib/systemd/system/k3s.service"} {
		if _, ok := sp[never]; ok {
			t.Errorf("uninstall plans %s", never)
		}
	}
	if sp["/etc/rancher/k3s"] != plan.ActionBackupRemove {
		t.Errorf("/etc/rancher/k3s on uninstall: %q, want backup-remove", sp["/etc/rancher/k3s"])
	}
	if sp := specPaths(p); sp["/usr/local/bin/k3s"] != "" || sp["/etc/rancher/k3s"] != plan.ActionBackupEmpty {
		t.Error("Uninstall changed the profile it was given")
	}
	if !slices.Contains(u.Evidence, "uninstall: leaving /usr/local/bin/k3s-killall.sh to its package k3s-tools") {
		t.Errorf("evidence %q", u.Evidence)
	}
}
