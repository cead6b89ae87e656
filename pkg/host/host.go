// Package host resolves host paths under the --host-root directory. Every
// package that reads or changes host files takes a Host instead of calling os
// with absolute paths, so that the tool works from a privileged container with
// the host at /host and tests work over a temporary root.
package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Host is the machine being reset, seen from where nodereset runs.
type Host struct {
	root string
	proc string
}

// Option changes how a Host is built.
type Option func(*Host)

// WithProc sets the procfs mount that shows the host's processes (default
// /proc: run with the host's PID namespace).
func WithProc(dir string) Option { return func(h *Host) { h.proc = dir } }

// New checks that root is an existing directory and returns the Host for it.
func New(root string, opts ...Option) (*Host, error) {
	if root == "" {
		root = "/"
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("host root %q: %w", root, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("host root %q: %w (pass --host-root the directory where the host's / is mounted)", root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("host root %q is not a directory", root)
	}
	h := &Host{root: abs, proc: "/proc"}
	for _, o := range opts {
		o(h)
	}
	return h, nil
}

// Root is the absolute host root directory as nodereset sees it.
func (h *Host) Root() string { return h.root }

// Proc is the procfs directory that shows the host's processes.
func (h *Host) Proc() string { return h.proc }

// Path joins a host path under the root lexically, without following any
// symlink. Use it where the caller itself refuses to follow links.
func (h *Host) Path(hostPath string) string {
	return filepath.Join(h.root, filepath.Clean("/"+hostPath))
}

// Resolve joins a host path under the root, following symlinks as the host
// would see them (an absolute link target stays inside the root).
func (h *Host) Resolve(hostPath string) (string, error) {
	p, err := securejoin.SecureJoin(h.root, hostPath)
	if err != nil {
		return "", fmt.Errorf("resolve %s under %s: %w", hostPath, h.root, err)
	}
	return p, nil
}

// ErrOutside is returned by Rel for a path that is not under the host root.
var ErrOutside = errors.New("path is outside the host root")

// Rel turns a path as nodereset sees it into the host-side path.
func (h *Host) Rel(p string) (string, error) {
	p = filepath.Clean(p)
	if h.root == "/" {
		return p, nil
	}
	if p == h.root {
		return "/", nil
	}
	if !strings.HasPrefix(p, h.root+"/") {
		return "", fmt.Errorf("%s: %w", p, ErrOutside)
	}
	return p[len(h.root):], nil
}

// Under reports whether p equals dir or lies below it, by whole path
// components: /var/lib/kubelet-old is not under /var/lib/kubelet.
func Under(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	if dir == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}
