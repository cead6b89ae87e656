package profile

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Uninstall adds to p what the install scripts of the distributions in it
// installed: the K3s/RKE2 binaries, their killall/uninstall scripts, unit
// files and env files, the unpacked binaries under the data dir, the whole
// /etc/rancher/<name>; the Rancher system agent's binary and unit. A path
// that a Debian package owns (listed in /var/lib/dpkg/info/*.list) is never
// added: the package manager removes those. RPM's database is not read;
// on RPM hosts the packaged paths (/usr/bin, /usr/lib/systemd/system) are
// simply not candidates. kubeadm, Kubespray and RKE1 install nothing of
// their own beyond packages and containers, so they add nothing.
func Uninstall(h *host.Host, p Profile) (Profile, error) {
	owned, err := dpkgOwned(h)
	if err != nil {
		return p, err
	}
	p.Paths = slices.Clone(p.Paths) // the caller's profile stays as it was
	// The operator takes the node out for good: a package's units are
	// disabled too (their files stay the package's).
	p.KeepEnabled = nil
	var specs []paths.Spec
	for _, name := range strings.Split(p.Name, "+") {
		switch name {
		case "k3s", "rke2":
			d := k3sDist
			if name == "rke2" {
				d = rke2Dist
			}
			rp, err := d.discover(h)
			if err != nil {
				return p, err
			}
			specs = append(specs, d.installed(h, rp)...)
			for i, s := range p.Paths {
				if s.Path == d.etcDir {
					p.Paths[i] = paths.Spec{Path: d.etcDir, Action: plan.ActionBackupRemove,
						Reason: d.name + "'s config and kubeconfig (uninstall; backed up)"}
				}
			}
		case "rancher":
			specs = append(specs, scriptSpecs("rancher", []string{rancherAgentBin, "/usr/local/bin/rancher-system-agent-uninstall.sh"})...)
			specs = append(specs, unitFileSpecs("rancher", rancherAgentUnit)...)
			specs = append(specs, paths.Spec{Path: "/etc/systemd/system/rancher-system-agent.env", Action: plan.ActionRemove,
				Reason: "rancher install script: unit environment"})
		}
	}
	for _, s := range specs {
		if pkg := owned.owner(s.Path); pkg != "" {
			p.Evidence = append(p.Evidence, "uninstall: leaving "+s.Path+" to its package "+pkg)
			continue
		}
		if !hasSpec(p.Paths, s.Path) {
			p.Paths = append(p.Paths, s)
		}
	}
	return p, nil
}

// installed is what get.k3s.io / get.rke2.io put on the host.
func (d rancherDist) installed(h *host.Host, rp rancherPaths) []paths.Spec {
	var bins []string
	for _, b := range binDirs {
		bins = append(bins, b+"/"+d.binary, b+"/"+d.binary+"-killall.sh", b+"/"+d.binary+"-uninstall.sh",
			b+"/"+d.binary+"-agent-uninstall.sh")
		// The K3s script links kubectl, crictl and ctr to k3s unless they
		// already exist: only links to the binary are its.
		for _, tool := range []string{"kubectl", "crictl", "ctr"} {
			l := b + "/" + tool
			if t, err := os.Readlink(h.Path(l)); err == nil && filepath.Base(t) == d.binary {
				bins = append(bins, l)
			}
		}
	}
	specs := scriptSpecs(d.name, bins)
	for _, u := range d.units {
		specs = append(specs, unitFileSpecs(d.name, u)...)
	}
	if d.name == "rke2" {
		specs = append(specs, paths.Spec{Path: "/usr/local/share/rke2", Action: plan.ActionRemove,
			Reason: "rke2 install script: shared files (sysctl, licence)"})
	}
	return append(specs,
		paths.Spec{Path: rp.DataDir + "/data", Action: plan.ActionRemove, Reason: d.name + "'s unpacked binaries"},
		paths.Spec{Path: rp.DataDir + "/bin", Action: plan.ActionRemove, Reason: d.name + "'s binary link"},
	)
}

func scriptSpecs(name string, files []string) []paths.Spec {
	out := make([]paths.Spec, 0, len(files))
	for _, f := range files {
		out = append(out, paths.Spec{Path: f, Action: plan.ActionRemove, Reason: name + " install script: " + filepath.Base(f)})
	}
	return out
}

// unitFileSpecs are where the install scripts write unit files (not the
// package directories /lib and /usr/lib).
func unitFileSpecs(name, u string) []paths.Spec {
	var out []paths.Spec
	for _, dir := range []string{"/etc/systemd/system", "/usr/local/lib/systemd/system"} {
		out = append(out,
			paths.Spec{Path: dir + "/" + u, Action: plan.ActionRemove, Reason: name + " install script: unit file"},
			paths.Spec{Path: dir + "/" + u + ".env", Action: plan.ActionRemove, Reason: name + " install script: unit environment"})
	}
	return out
}

// dpkgFiles maps a path to the Debian package that owns it.
type dpkgFiles map[string]string

// owner names the package owning p or anything below it, or "".
func (o dpkgFiles) owner(p string) string {
	if pkg, ok := o[p]; ok {
		return pkg
	}
	for f, pkg := range o {
		if host.Under(f, p) {
			return pkg
		}
	}
	return ""
}

func dpkgOwned(h *host.Host) (dpkgFiles, error) {
	out := dpkgFiles{}
	lists, err := filepath.Glob(filepath.Join(resolveOr(h, "/var/lib/dpkg/info"), "*.list"))
	if err != nil {
		return nil, err
	}
	for _, l := range lists {
		f, err := os.Open(l)
		if err != nil {
			return nil, err
		}
		pkg := strings.TrimSuffix(filepath.Base(l), ".list")
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if line := sc.Text(); line != "" && line != "/." {
				out[line] = pkg
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
