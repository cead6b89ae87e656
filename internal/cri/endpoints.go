package cri

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"

	"github.com/nodereset/nodereset/pkg/host"
)

// endpoint is one CRI socket to look at.
type endpoint struct {
	// HostPath is the socket's host-side path after following links
	// (/var/run -> /run), so two names of one socket are one endpoint.
	HostPath string
	// Path is where nodereset dials it (under the host root).
	Path string
	// Explicit endpoints come from --cri-socket: one that does not answer
	// fails discovery instead of being skipped.
	Explicit bool
	// Guess endpoints are well-known sockets that exist but nobody named:
	// one that does not answer is a plan warning, never an error.
	Guess bool
}

// URL is how the endpoint is shown: the kubelet's own notation.
func (e endpoint) URL() string { return "unix://" + e.HostPath }

// ParseEndpoint turns a CRI endpoint as the kubelet takes it
// (unix:///run/containerd/containerd.sock, or a bare path) into a host-side
// socket path. Other schemes (tcp, npipe) are refused: nodereset resets
// the host it runs on.
func ParseEndpoint(s string) (string, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "unix://"); ok {
		s = rest
	} else if strings.Contains(s, "://") {
		return "", fmt.Errorf("CRI endpoint %q: only unix sockets are supported", s)
	}
	if !filepath.IsAbs(s) {
		return "", fmt.Errorf("CRI endpoint %q: want an absolute socket path or unix:///path", s)
	}
	return filepath.Clean(s), nil
}

// kubeletEndpoints returns the --container-runtime-endpoint the kubelet was
// configured with, from kubeadm's flags file and from the kubelet config's
// containerRuntimeEndpoint (Kubernetes 1.27+). Missing files are no error.
func kubeletEndpoints(h *host.Host, kubeletRoot string) ([]string, error) {
	if kubeletRoot == "" {
		return nil, nil
	}
	var out []string
	var errs []error
	read := func(name string) []byte {
		p, err := h.Resolve(filepath.Join(kubeletRoot, name))
		if err == nil {
			var b []byte
			if b, err = os.ReadFile(p); err == nil {
				return b
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("read %s: %w", filepath.Join(kubeletRoot, name), err))
		}
		return nil
	}
	if b := read("kubeadm-flags.env"); b != nil {
		out = append(out, flagsFileEndpoints(b)...)
	}
	if b := read("config.yaml"); b != nil {
		var cfg struct {
			ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
		}
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			errs = append(errs, fmt.Errorf("kubelet config %s: %w", filepath.Join(kubeletRoot, "config.yaml"), err))
		} else if cfg.ContainerRuntimeEndpoint != "" {
			out = append(out, cfg.ContainerRuntimeEndpoint)
		}
	}
	return out, errors.Join(errs...)
}

// flagsFileEndpoints reads --container-runtime-endpoint from an
// environment file of the kind kubeadm writes
// (KUBELET_KUBEADM_ARGS="--flag=value --flag value"). Flags are parsed as
// words, so --container-runtime-endpoint-x is not taken for it.
func flagsFileEndpoints(b []byte) []string {
	const flag = "--container-runtime-endpoint"
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		_, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if u, err := strconv.Unquote(val); err == nil {
			val = u
		} else {
			val = strings.Trim(val, `'`)
		}
		words := strings.Fields(val)
		for i, w := range words {
			switch {
			case strings.HasPrefix(w, flag+"="):
				out = append(out, strings.TrimPrefix(w, flag+"="))
			case w == flag && i+1 < len(words):
				out = append(out, words[i+1])
			}
		}
	}
	return out
}

// endpoints resolves every configured socket under the host root, adds the
// well-known sockets that exist, and drops duplicates: two names of one
// socket (a /var/run link, a hard link or bind mount of the socket) are one
// endpoint, the first name and the strongest source winning. Named sockets
// that do not exist are kept: shims of a runtime that is down (and removed
// its socket) are still found by the socket path.
func (r *runtime) endpoints(h *host.Host) ([]endpoint, error) {
	type src struct {
		s               string
		explicit, guess bool
	}
	var all []src
	for _, s := range r.opts.Explicit {
		all = append(all, src{s: s, explicit: true})
	}
	for _, s := range r.opts.Sockets {
		all = append(all, src{s: s})
	}
	kub, kerr := kubeletEndpoints(h, r.opts.KubeletRoot)
	for _, s := range kub {
		all = append(all, src{s: s})
	}
	for _, s := range WellKnownSockets() {
		all = append(all, src{s: s, guess: true})
	}
	var out []endpoint
	var errs []error
	if kerr != nil {
		errs = append(errs, kerr)
	}
	seen := map[string]int{}
	seenIno := map[[2]uint64]int{}
	for _, s := range all {
		p, err := ParseEndpoint(s.s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		abs, err := h.Resolve(p)
		if err != nil {
			if !s.guess {
				errs = append(errs, err)
			}
			continue
		}
		id, isSock := socketID(abs)
		if s.guess && !isSock {
			continue
		}
		i, dup := seen[abs]
		if !dup && isSock {
			i, dup = seenIno[id]
		}
		if dup {
			out[i].Explicit = out[i].Explicit || s.explicit
			out[i].Guess = out[i].Guess && s.guess
			continue
		}
		hp, err := h.Rel(abs)
		if err != nil {
			hp = p
		}
		seen[abs] = len(out)
		if isSock {
			seenIno[id] = len(out)
		}
		out = append(out, endpoint{HostPath: hp, Path: abs, Explicit: s.explicit, Guess: s.guess})
	}
	return out, errors.Join(errs...)
}

// WellKnownSockets are the CRI sockets the runtimes listen on by default,
// host-side: containerd's, K3s's and RKE2's embedded containerd, CRI-O's,
// cri-dockerd's. Discovery looks at each that exists whatever the profile:
// a K3s or RKE2 kubelet may use the system containerd, and an RKE1 node may
// have a kubelet on containerd; only pods the kubelet labelled are taken.
func WellKnownSockets() []string {
	return []string{
		"/run/containerd/containerd.sock",
		"/run/k3s/containerd/containerd.sock",
		"/run/crio/crio.sock",
		"/run/cri-dockerd.sock",
		// The same, for a host whose /var/run is not a link to /run.
		"/var/run/containerd/containerd.sock",
		"/var/run/crio/crio.sock",
		"/var/run/cri-dockerd.sock",
	}
}

// socketID is the device and inode of the socket at p, and whether p is a
// socket at all.
func socketID(p string) ([2]uint64, bool) {
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return [2]uint64{}, false
	}
	return [2]uint64{uint64(st.Dev), st.Ino}, true
}
