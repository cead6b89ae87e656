package profile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	// ownUnits, when set, replace the profile's units as evidence: a
	// profile built on another (Kubespray on kubeadm) is not evidenced by
	// the base's units.
	ownUnits []string
}

var detectors = []detector{
	{name: "kubeadm", probe: probeKubeadm},
	{name: "kubespray", probe: probeKubespray, ownUnits: []string{"calico-node.service"}},
	{name: "rke1", probe: func(h *host.Host) (Profile, []string, error) {
		p, err := RKE1(h)
		return p, []string{"/etc/kubernetes/ssl/kube-ca.pem", "/etc/kubernetes/ssl/kube-node.pem",
			"/opt/rke/etcd-snapshots", "/var/lib/rancher/rke/log"}, err
	}},
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
		"/etc/kubernetes/pki/ca.crt", kubeadmFlagsFile, "/usr/bin/kubeadm", "/usr/local/bin/kubeadm"}
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
		p.Name, p.Evidence = d.name, evidence(h, p, d, markers, running)
		if len(p.Evidence) > 0 {
			p.Evidence = append(p.Evidence, prefixed(d.name, notes)...)
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

func evidence(h *host.Host, p Profile, d detector, markers []string, running map[fileID]int) []string {
	var ev []string
	add := func(s string) { ev = append(ev, p.Name+": "+s) }
	units, exes := p.Units, p.Executables
	if d.ownUnits != nil {
		units, exes = d.ownUnits, nil
	}
	for _, u := range units {
		if f := findUnitFile(h, u); f != "" {
			add("unit " + u + " (" + f + ")")
		}
	}
	for _, m := range markers {
		if _, err := os.Lstat(h.Path(m)); err == nil {
			add("found " + m)
		}
	}
	for _, exe := range exes {
		id, ok := statID(resolveOr(h, exe))
		if !ok {
			continue
		}
		if pid, run := running[id]; run {
			add("process " + strconv.Itoa(pid) + " runs " + exe)
		} else if d.installedCounts {
			add("installed " + exe)
		}
	}
	return ev
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

// ErrProfileMismatch is wrapped by Select when a named profile has no
// evidence on the host and force is off.
var ErrProfileMismatch = errors.New("profile does not match the host")

// Select chooses the profile to run from Detect's result. Without names
// it merges every detected profile, or falls back to kubeadm's defaults
// when none is detected (a clean host). With names (--profile) it uses
// exactly those; one that was not detected is an error wrapping
// ErrProfileMismatch unless force.
func Select(detected []Profile, names []string, force bool) (Profile, error) {
	byName := map[string]Profile{}
	for _, p := range detected {
		byName[p.Name] = p
	}
	var chosen []Profile
	if len(names) == 0 {
		for _, p := range detected {
			if len(p.Evidence) > 0 {
				chosen = append(chosen, p)
			}
		}
		if len(chosen) == 0 {
			p, ok := byName["kubeadm"]
			if !ok {
				return Profile{}, errors.New("no profile could be built for this host; see the errors above")
			}
			p.Evidence = []string{"kubeadm: no distribution detected; using kubeadm's defaults"}
			return Merge(p), nil
		}
		return Merge(chosen...), nil
	}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if !contains(Names(), n) {
			return Profile{}, fmt.Errorf("unknown profile %q (known: %s)", n, strings.Join(Names(), ", "))
		}
		p, ok := byName[n]
		if !ok {
			return Profile{}, fmt.Errorf("profile %s could not be built for this host; see the errors above", n)
		}
		if len(p.Evidence) == 0 {
			if !force {
				return Profile{}, fmt.Errorf("--profile %s: %w: nothing of %s found (detected: %s); check the host root, or pass --force to use %s's paths anyway",
					n, ErrProfileMismatch, n, detectedNames(detected), n)
			}
			p.Evidence = []string{n + ": chosen with --force; no evidence on this host"}
		}
		chosen = append(chosen, p)
	}
	return Merge(chosen...), nil
}

func detectedNames(ps []Profile) string {
	var n []string
	for _, p := range ps {
		if len(p.Evidence) > 0 {
			n = append(n, p.Name)
		}
	}
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ", ")
}

// Choice is the user's say in which profile runs.
type Choice struct {
	// Names restrict the run to these profiles (--profile); empty means
	// every detected one.
	Names []string
	// Force uses a named profile without evidence (--force).
	Force bool
	// Uninstall adds what the K3s/RKE2/Rancher install scripts installed
	// (--uninstall).
	Uninstall bool
}

// DetectError is a profile that could not be built (a config file it must
// read is unreadable or malformed).
type DetectError struct {
	Profile string
	Err     error
}

func (e *DetectError) Error() string {
	return fmt.Sprintf("profile %s: %v", e.Profile, e.Err)
}

func (e *DetectError) Unwrap() error { return e.Err }

// Resolve is Detect, Select and, when asked, Uninstall in one call: the
// profile a command runs with. A profile that could not be built fails the
// call when it matters: always without names (its state would be missed),
// with names only when it is one of them.
func Resolve(h *host.Host, c Choice) (Profile, error) {
	ps, derr := Detect(h, "")
	var relevant []error
	for _, e := range unjoin(derr) {
		var de *DetectError
		if len(c.Names) == 0 || !errors.As(e, &de) || contains(c.Names, de.Profile) {
			relevant = append(relevant, e)
		}
	}
	if err := errors.Join(relevant...); err != nil {
		return Profile{}, err
	}
	p, err := Select(ps, c.Names, c.Force)
	if err != nil {
		return Profile{}, err
	}
	if c.Uninstall {
		return Uninstall(h, p)
	}
	return p, nil
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
