package docker

import (
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

// ShimName is a container name the kubelet's dockershim (and cri-dockerd)
// gives: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>, with the
// container POD for the pod's sandbox.
type ShimName struct {
	Container, Pod, Namespace, UID string
	Attempt                        int
}

// Sandbox reports whether the name is a pod sandbox (the pause container).
func (n ShimName) Sandbox() bool { return n.Container == "POD" }

// ParseShimName parses a dockershim container name exactly: six fields
// separated by "_" (Kubernetes names cannot hold one), the "k8s" prefix,
// DNS names for container, pod and namespace, a UID of hex digits and
// dashes (a UUID, or a static pod's 32-digit hash) and a decimal attempt.
// A name with a leading "/", as the Docker API lists it, is accepted.
// Anything else is not a kubelet name: "k8s_notes" or "k8s_a_b_c" are a
// user's.
func ParseShimName(name string) (ShimName, bool) {
	f := strings.Split(strings.TrimPrefix(name, "/"), "_")
	if len(f) != 6 || f[0] != "k8s" {
		return ShimName{}, false
	}
	n := ShimName{Container: f[1], Pod: f[2], Namespace: f[3], UID: f[4]}
	if n.Container != "POD" && !dnsLabel(n.Container) {
		return ShimName{}, false
	}
	if !dnsSubdomain(n.Pod) || !dnsLabel(n.Namespace) || !uid(n.UID) {
		return ShimName{}, false
	}
	a, err := strconv.Atoi(f[5])
	if err != nil || a < 0 || strconv.Itoa(a) != f[5] {
		return ShimName{}, false
	}
	n.Attempt = a
	return n, true
}

// dnsLabel is RFC 1123: lower-case alphanumerics and "-", at most 63,
// starting and ending alphanumeric.
func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// dnsSubdomain is dot-separated DNS labels, at most 253 characters.
func dnsSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !dnsLabel(l) {
			return false
		}
	}
	return true
}

// uid accepts what the kubelet uses as a pod UID: an API server UUID
// (8-4-4-4-12 hex digits) or a static pod's MD5 hash (32 hex digits).
func uid(s string) bool {
	switch len(s) {
	case 32:
		return hex(s)
	case 36:
		f := strings.Split(s, "-")
		if len(f) != 5 {
			return false
		}
		for i, n := range []int{8, 4, 4, 4, 12} {
			if len(f[i]) != n || !hex(f[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// hex reports lower-case hex digits only.
func hex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// ImageRepo returns an image reference's repository path without registry,
// tag or digest: "rancher/hyperkube" for
// "registry.example.com:5000/rancher/hyperkube:v1.20.15-rancher1". An image
// ID or anything unparsable returns "".
func ImageRepo(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ""
	}
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return reference.Path(n)
}
