package cri

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/procs"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
)

// Shim is one containerd shim process serving Kubernetes containers.
type Shim struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	Exe       string `json:"exe"`
	// ID is the shim's -id: the sandbox (or container) it serves.
	ID      string `json:"id"`
	Address string `json:"address"`
}

// Annotations containerd's CRI plugin writes into each OCI spec; the
// shim's working directory is the bundle holding that spec.
const (
	annSandboxName      = "io.kubernetes.cri.sandbox-name"
	annSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	annSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	annSandboxID        = "io.kubernetes.cri.sandbox-id"
	annContainerType    = "io.kubernetes.cri.container-type"
)

// shimValueFlags are the shim flags that take a value (containerd-shim v1
// and v2); any other flag is a boolean.
var shimValueFlags = map[string]bool{
	"namespace": true, "id": true, "address": true, "publish-binary": true, "bundle": true,
	"workdir": true, "containerd-binary": true, "runtime-root": true, "socket": true, "criu": true,
}

// ShimFlags parses a shim's argv as the Go flag package would: -name value,
// -name=value, --name value. Only flags count, so a container ID or path
// that merely contains "k8s.io" is not a namespace.
func ShimFlags(argv []string) map[string]string {
	out := map[string]string{}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		name := strings.TrimLeft(a, "-")
		if n, v, ok := strings.Cut(name, "="); ok {
			out[n] = v
			continue
		}
		if shimValueFlags[name] && i+1 < len(argv) {
			out[name] = argv[i+1]
			i++
			continue
		}
		out[name] = "true"
	}
	return out
}

// IsShimExe reports whether an executable is a containerd shim
// (containerd-shim, containerd-shim-runc-v2, containerd-shim-runsc-v1 ...),
// by the file's base name, a deleted binary included.
func IsShimExe(link string) bool {
	base := filepath.Base(strings.TrimSuffix(link, " (deleted)"))
	return base == "containerd-shim" || strings.HasPrefix(base, "containerd-shim-")
}

// sameSocket reports whether a shim's -address names the endpoint. The
// address is the path the runtime saw: host-side, or, when nodereset runs
// in the host's mount namespace over a host root, already under that root.
func sameSocket(h *host.Host, address string, ep endpoint) bool {
	address = strings.TrimPrefix(address, "unix://")
	if !filepath.IsAbs(address) {
		return false
	}
	if rel, err := h.Rel(address); err == nil {
		address = rel
	}
	p, err := h.Resolve(address)
	return err == nil && p == ep.Path
}

// sameSocketDir checks that the shim's -address, seen from the shim's own
// root (/proc/PID/root), lies in the very directory (same device and inode)
// that holds the endpoint's socket under the host root. The address text
// alone is not enough: a shim of another machine's runtime in another mount
// namespace (a container, a test's sandbox, the real host seen from a
// --host-root over a temporary tree) has the same text. The directory is
// compared, not the socket, because a runtime stopped cleanly removes its
// socket and leaves its shims running.
func sameSocketDir(proc string, pid int, address string, ep endpoint) bool {
	address = strings.TrimPrefix(address, "unix://")
	var theirs, ours unix.Stat_t
	if unix.Stat(filepath.Join(proc, strconv.Itoa(pid), "root", filepath.Dir(address)), &theirs) != nil {
		return false
	}
	if unix.Stat(filepath.Dir(ep.Path), &ours) != nil {
		return false
	}
	return theirs.Dev == ours.Dev && theirs.Ino == ours.Ino
}

// shimPods finds the shims of the kubelet's containerd namespace serving
// endpoint ep and groups them by pod sandbox.
func (r *runtime) shimPods(env *engine.Env, ep endpoint) ([]PodDetail, error) {
	proc := env.Host.Proc()
	pids, err := procs.ListPIDs(proc)
	if err != nil {
		return nil, err
	}
	byID := map[string]int{}
	var out []PodDetail
	for _, pid := range pids {
		s, ok := r.matchShim(env.Host, proc, pid, ep)
		if !ok {
			continue
		}
		spec := readBundleSpec(proc, pid)
		sbID := s.ID
		if spec[annContainerType] == "container" && spec[annSandboxID] != "" {
			sbID = spec[annSandboxID]
		}
		if i, ok := byID[sbID]; ok {
			out[i].Shims = append(out[i].Shims, s)
			continue
		}
		d := PodDetail{Endpoint: ep.HostPath, SandboxID: sbID, Namespace: spec[annSandboxNamespace],
			Name: spec[annSandboxName], UID: spec[annSandboxUID], Kubelet: true, Shims: []Shim{s}}
		if d.Name == "" {
			// A container's bundle names its sandbox only by ID.
			d.Namespace, d.Name = r.opts.Namespace, "sandbox-"+short(sbID)
		}
		byID[sbID] = len(out)
		out = append(out, d)
	}
	return out, nil
}

// matchShim decides by identity whether pid is a shim of the kubelet's
// namespace for ep: a containerd-shim* executable whose -namespace flag is
// exactly the namespace and whose -address is the endpoint's socket.
func (r *runtime) matchShim(h *host.Host, proc string, pid int, ep endpoint) (Shim, bool) {
	exe, err := os.Readlink(filepath.Join(proc, strconv.Itoa(pid), "exe"))
	if err != nil || !IsShimExe(exe) {
		return Shim{}, false
	}
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return Shim{}, false
	}
	args := ShimFlags(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
	if args["namespace"] != r.opts.Namespace || args["id"] == "" || !sameSocket(h, args["address"], ep) ||
		!sameSocketDir(proc, pid, args["address"], ep) {
		return Shim{}, false
	}
	if !criCreated(readBundleSpec(proc, pid)) {
		return Shim{}, false
	}
	st, err := procs.ReadStat(proc, pid)
	if err != nil || st.State == 'Z' {
		return Shim{}, false
	}
	return Shim{PID: pid, StartTime: st.StartTime, Exe: exe, ID: args["id"], Address: args["address"]}, true
}

// criCreated says whether a bundle's annotations show the CRI plugin made
// it for the kubelet: a sandbox with its pod's name and namespace, or a
// container of a sandbox. A task someone started in the k8s.io namespace by
// hand (ctr, nerdctl) has none of them and is not the kubelet's.
func criCreated(spec map[string]string) bool {
	switch spec[annContainerType] {
	case "sandbox":
		return spec[annSandboxName] != "" && spec[annSandboxNamespace] != ""
	case "container":
		return spec[annSandboxID] != ""
	}
	return false
}

// readBundleSpec returns the OCI annotations of the bundle that is the
// shim's working directory, or nil.
func readBundleSpec(proc string, pid int) map[string]string {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cwd", "config.json"))
	if err != nil {
		return nil
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(b, &spec) != nil {
		return nil
	}
	return spec.Annotations
}

func shimReason(d PodDetail, namespace string) string {
	ids := make([]string, len(d.Shims))
	for i, s := range d.Shims {
		ids[i] = strconv.Itoa(s.PID)
	}
	return fmt.Sprintf("runtime at unix://%s is down: kill the %s shim (pid %s, -namespace %s) and its processes; "+
		"start the runtime again and re-run to remove its records", d.Endpoint, filepath.Base(d.Shims[0].Exe),
		strings.Join(ids, ", "), namespace)
}

// children maps each PID to its children, from one pass over procfs.
func children(proc string) (map[int][]int, map[int]uint64, error) {
	pids, err := procs.ListPIDs(proc)
	if err != nil {
		return nil, nil, err
	}
	m := map[int][]int{}
	starts := map[int]uint64{}
	for _, pid := range pids {
		st, err := procs.ReadStat(proc, pid)
		if err != nil {
			continue // a process that exits mid-read has no children to kill
		}
		m[st.PPID] = append(m[st.PPID], pid)
		starts[pid] = st.StartTime
	}
	return m, starts, nil
}

// descendants lists every process below pid, parents before children.
func descendants(tree map[int][]int, pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range tree[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}
