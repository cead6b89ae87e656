// Package sandbox builds and drives a sandbox node: a realistic, dirty
// kubeadm control-plane node planted inside new mount, PID and network
// namespaces over a temporary host root. End-to-end tests, benchmarks and
// `make demo` run nodereset inside it (through nsenter, with --host-root) and
// then ask the sandbox whether every decoy — the user's data, processes,
// mounts, listeners and units that only look Kubernetes-owned — survived.
//
// Typical use from a test:
//
//	n, err := sandbox.Start(ctx, sandbox.Options{Nodesim: bin, Root: dir + "/root", State: dir + "/state", Pods: 3, Volumes: 4})
//	defer n.Close()
//	out, err := n.Command(ctx, noderesetBin, "reset", "--host-root", n.Manifest().Root).CombinedOutput()
//	err = n.Check(ctx) // wraps ErrDamaged and names every damaged decoy
//
// Inside, /proc shows only the sandbox's processes and 127.0.0.1 is its own.
//
// The nodesim program is a thin CLI over this package; the same binary is
// also the namespace init and every fake component process.
package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nodereset/nodereset/pkg/plan"
)

// File names inside the state directory.
const (
	ManifestFile = "manifest.json"
	InitPIDFile  = "init.pid"
	InitLogFile  = "init.log"
)

// Manifest describes a running sandbox: what nodereset must plan (Expected)
// and what it must leave alone (Decoys). All paths are host-side (without
// the Root prefix); PIDs are as seen inside the sandbox's PID namespace,
// except InitPID.
type Manifest struct {
	Root string `json:"root"`
	// InitPID is the namespace init as seen from where the sandbox was
	// started; nsenter -t takes it. InitStart (clock ticks since boot, field
	// 22 of /proc/PID/stat) guards against signalling a recycled PID.
	InitPID   int    `json:"initPid"`
	InitStart uint64 `json:"initStart"`
	Pods      int    `json:"pods"`
	Volumes   int    `json:"volumes"`
	Expected  []Item `json:"expected"`
	Decoys    Decoys `json:"decoys"`
}

// Item is one thing nodereset must find and plan.
type Item struct {
	Kind   plan.Kind `json:"kind"`
	Target string    `json:"target"`
}

// Decoys are things that look Kubernetes-owned (or sit next to what is)
// but belong to the user; a correct reset leaves every one intact.
type Decoys struct {
	Files     []DecoyFile     `json:"files"`
	Processes []DecoyProcess  `json:"processes"`
	Mounts    []DecoyMount    `json:"mounts"`
	Listeners []DecoyListener `json:"listeners"`
	Units     []DecoyUnit     `json:"units"`
	// States are decoy state that has no file form (links, firewall rules,
	// containers): a named probe's canonical text, taken when planted and
	// compared by Check.
	States []DecoyState `json:"states,omitempty"`
}

// DecoyState is what a probe (see stateProbe) printed when the decoy was
// planted.
type DecoyState struct {
	Name string `json:"name"`
	Want string `json:"want"`
}

// DecoyFile is a regular file (SHA256 set) or a symlink (Link set).
type DecoyFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256,omitempty"`
	Link   string `json:"link,omitempty"`
}

// DecoyProcess is identified by PID and start time together, so a process
// that was killed and replaced under the same PID is still noticed.
type DecoyProcess struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	Exe   string `json:"exe"`
}

// DecoyMount is a mount point that must still be mounted.
type DecoyMount struct {
	Point string `json:"point"`
}

// DecoyListener is a TCP port on 127.0.0.1 that must still accept.
type DecoyListener struct {
	Port int `json:"port"`
}

// DecoyUnit is an enabled unit's symlink that must still be present.
type DecoyUnit struct {
	Symlink string `json:"symlink"`
	Target  string `json:"target"`
}

// Count returns how many expected items have the given kind.
func (m Manifest) Count(k plan.Kind) int {
	n := 0
	for _, it := range m.Expected {
		if it.Kind == k {
			n++
		}
	}
	return n
}

// ReadManifest loads S/manifest.json.
func ReadManifest(state string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(state, ManifestFile))
	if err != nil {
		return m, fmt.Errorf("read sandbox manifest: %w (is the sandbox up? run nodesim up --state %s)", err, state)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("parse sandbox manifest %s: %w", filepath.Join(state, ManifestFile), err)
	}
	return m, nil
}

// writeManifest writes the manifest atomically, so a reader never sees half.
func writeManifest(state string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(state, ManifestFile), b)
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
