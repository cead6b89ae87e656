package profile

import "strings"

// flagValues returns every value given to any of names in args, in order
// ("--root-dir=/x", "--root-dir /x", "-d /x"). Components parse flags so
// that the last one wins; callers take the last element. A name is given
// without dashes; both "-" and "--" forms match, as Go's flag package and
// urfave/cli accept.
func flagValues(args []string, names ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "--" {
			continue
		}
		body := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		k, v, hasV := strings.Cut(body, "=")
		if !contains(names, k) {
			continue
		}
		if hasV {
			out = append(out, v)
		} else if i+1 < len(args) {
			out = append(out, args[i+1])
			i++
		}
	}
	return out
}

// lastFlag is the effective value of a flag, or "".
func lastFlag(args []string, names ...string) string {
	v := flagValues(args, names...)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// kubeletArgsAsFlags turns K3s/RKE2 kubelet-arg values ("root-dir=/x")
// into kubelet flags ("--root-dir=/x").
func kubeletArgsAsFlags(vals []string) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		out = append(out, "--"+strings.TrimLeft(v, "-"))
	}
	return out
}

// socketPath turns a CRI endpoint ("unix:///run/containerd/containerd.sock")
// into its host path; "" for anything that is not a unix socket path.
func socketPath(endpoint string) string {
	p := strings.TrimPrefix(endpoint, "unix://")
	if !strings.HasPrefix(p, "/") {
		return ""
	}
	return p
}
