package profile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/nodereset/nodereset/pkg/host"
)

// Names are the profile names, in the order profiles merge.
func Names() []string {
	out := make([]string, len(detectors))
	for i, d := range detectors {
		out[i] = d.name
	}
	return out
}

// detector finds one distribution: probe builds its profile with the
// host's real paths and names the files and directories whose presence is
// evidence (markers); units and running executables of the profile are
// evidence too, and installed executables where installedCounts (an
// install script's /usr/local/bin/k3s says K3s; /usr/bin/kubelet from a
// package says little).
type detector struct {
	name            string
	probe           func(h *host.Host) (Profile, []string, error)
	installedCounts bool
	// installed are marker executables (kubeadm's): their presence is an
	// install, not a leftover file.
	installed []string
	// filesOnly: files are all detection can see of the distribution
	// (RKE1 runs everything in Docker containers), so files alone are no
	// sign of a leftover unless another distribution is live.
	filesOnly bool
	// ownUnits, when set, replace the profile's units as evidence: a
	// profile built on another (Kubespray on kubeadm) is not evidenced by
	// the base's units.
	ownUnits []string
}

var detectors = []detector{
	{name: "kubeadm", probe: probeKubeadm, installed: []string{"/usr/bin/kubeadm", "/usr/local/bin/kubeadm"}},
	{name: "kubespray", probe: probeKubespray, ownUnits: []string{"calico-node.service"}},
	{name: "rke1", probe: func(h *host.Host) (Profile, []string, error) {
		p, err := RKE1(h)
		return p, []string{"/etc/kubernetes/ssl/kube-ca.pem", "/etc/kubernetes/ssl/kube-node.pem",
			"/opt/rke/etcd-snapshots", "/var/lib/rancher/rke/log"}, err
	}, filesOnly: true},
	{name: "rke2", probe: rke2Dist.probe, installedCounts: true},
	{name: "k3s", probe: k3sDist.probe, installedCounts: true},
	{name: "rancher", probe: func(h *host.Host) (Profile, []string, error) {
		p, err := Rancher(h)
		return p, []string{rancherAgentEtc, rancherAgentVar}, err
	}, installedCounts: true},
}

func probeKubeadm(h *host.Host) (Profile, []string, error) {
	p, err := Kubeadm(h)
	if err != nil {
		return p, nil, err
	}
	m := []string{"/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf", "/etc/kubernetes/bootstrap-kubelet.conf",
		"/etc/kubernetes/pki/ca.crt", kubeadmFlagsFile}
	for _, d := range p.StaticPodDirs {
		m = append(m, d+"/kube-apiserver.yaml", d+"/etcd.yaml")
	}
	return p, m, nil
}

func probeKubespray(h *host.Host) (Profile, []string, error) {
	p, err := Kubespray(h)
	return p, []string{kubesprayEtcdEnv, "/etc/ssl/etcd/ssl", "/etc/kubernetes/kubelet.env"}, err
}

func (d rancherDist) probe(h *host.Host) (Profile, []string, error) {
	rp, err := d.discover(h)
	if err != nil {
		return Profile{}, nil, err
	}
	return d.profile(h, rp), []string{d.etcDir + "/config.yaml", d.etcDir + "/" + d.name + ".yaml",
		rp.DataDir + "/server", rp.DataDir + "/agent"}, nil
}

// Detect builds every known profile with the host's real paths and fills
// in its Evidence from what is on the host: unit files, marker files and
// directories, installed and running executables (compared by file
// identity through procDir/PID/exe; procDir "" means h.Proc()). A profile
// with empty Evidence was not detected; Select decides what to use.
// Evidence lines start with the profile's name, so they stay attributable
// after Merge.
func Detect(h *host.Host, procDir string) ([]Profile, error) {
	if procDir == "" {
		procDir = h.Proc()
	}
	running := runningExes(procDir)
	var out []Profile
	var errs []error
	for _, d := range detectors {
		p, markers, err := d.probe(h)
		if err != nil {
			errs = append(errs, &DetectError{Profile: d.name, Err: err})
			continue
		}
		notes := p.Evidence
		var live bool
		p.Name = d.name
		p.Evidence, live = evidence(h, p, d, markers, running)
		p.leftover = len(p.Evidence) > 0 && !live
		p.filesOnly = d.filesOnly
		if len(p.Evidence) > 0 {
			p.Evidence = append(p.Evidence, prefixed(d.name, notes)...)
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// evidence lists what shows the profile on the host; live says whether
// any of it is a unit, a process or an installed executable rather than
// files only.
func evidence(h *host.Host, p Profile, d detector, markers []string, running map[fileID]int) (ev []string, live bool) {
	add := func(s string) { ev = append(ev, p.Name+": "+s) }
	units, exes := p.Units, p.Executables
	if d.ownUnits != nil {
		units, exes = d.ownUnits, nil
	}
	for _, u := range units {
		if f := findUnitFile(h, u); f != "" {
			add("unit " + u + " (" + f + ")")
			live = true
		}
	}
	for _, m := range markers {
		if _, err := os.Lstat(h.Path(m)); err == nil {
			add("found " + m)
		}
	}
	for _, m := range d.installed {
		if _, err := os.Lstat(h.Path(m)); err == nil {
			add("installed " + m)
			live = true
		}
	}
	for _, exe := range exes {
		id, ok := statID(resolveOr(h, exe))
		if !ok {
			continue
		}
		if pid, run := running[id]; run {
			add("process " + strconv.Itoa(pid) + " runs " + exe)
			live = true
		} else if d.installedCounts {
			add("installed " + exe)
			live = true
		}
	}
	return ev, live
}

func prefixed(name string, notes []string) []string {
	out := make([]string, len(notes))
	for i, n := range notes {
		out[i] = name + ": " + n
	}
	return out
}

// fileID is a file's identity: the same device and inode is the same file
// whatever path or link reaches it.
type fileID struct{ dev, ino uint64 }

func statID(p string) (fileID, bool) {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return fileID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, true
}

// runningExes maps the executable of every process to one PID running it.
// Unreadable processes (gone, or kernel threads) are skipped: detection
// only gathers evidence.
func runningExes(procDir string) map[fileID]int {
	out := map[fileID]int{}
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if id, ok := statID(filepath.Join(procDir, e.Name(), "exe")); ok {
			if _, seen := out[id]; !seen {
				out[id] = pid
			}
		}
	}
	return out
}
