// Package staticpods is the kind "static-pod": the manifests in the kubelet's
// staticPodPath. Removing them first lets the kubelet (if still running)
// stop etcd and the control plane itself, and keeps a rejoin from starting
// the old control plane again. Files are moved into the backup, since a
// manifest is the only record of a custom etcd data dir or flag.
package staticpods

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"sigs.k8s.io/yaml"

	"github.com/nodereset/nodereset/internal/fstree"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Options configure the kind.
type Options struct {
	// Dirs are the host-side manifest directories (the kubelet's
	// staticPodPath, RKE2's agent/pod-manifests...).
	Dirs []string
	// Backup moves manifests into the backup instead of unlinking them.
	Backup bool
}

// Kind implements engine.Kind for plan.KindStaticPod.
type Kind struct {
	opts Options
}

var _ engine.Kind = (*Kind)(nil)

// New returns the kind for opts.
func New(opts Options) *Kind { return &Kind{opts: opts} }

// Kind names the items this kind produces.
func (k *Kind) Kind() plan.Kind { return plan.KindStaticPod }

// StaticPodPath returns staticPodPath from a KubeletConfiguration document,
// or "" when it is not set.
func StaticPodPath(kubeletConfig []byte) (string, error) {
	var c struct {
		StaticPodPath string `json:"staticPodPath"`
	}
	if err := yaml.Unmarshal(kubeletConfig, &c); err != nil {
		return "", fmt.Errorf("parse kubelet configuration: %w", err)
	}
	return c.StaticPodPath, nil
}

// maxManifest bounds how much of a manifest is read to find its name.
const maxManifest = 1 << 20

// Discover lists the regular files and symlinks directly in each directory,
// skipping dotfiles as the kubelet does.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	var items []plan.Item
	var errs []error
	for _, d := range k.opts.Dirs {
		if err := ctx.Err(); err != nil {
			return items, err
		}
		found, err := k.discoverDir(env, d)
		items = append(items, found...)
		errs = append(errs, err)
	}
	return items, errors.Join(errs...)
}

// manifestDir resolves dir inside the host root as the kubelet would see it,
// and returns it host-side and as nodereset sees it.
func manifestDir(env *engine.Env, dir string) (hostDir, full string, err error) {
	full, err = env.Host.Resolve(dir)
	if err != nil {
		return "", "", err
	}
	hostDir, err = env.Host.Rel(full)
	return hostDir, full, err
}

func (k *Kind) discoverDir(env *engine.Env, dir string) ([]plan.Item, error) {
	hostDir, full, err := manifestDir(env, dir)
	if err != nil {
		return nil, fmt.Errorf("static pod directory %s: %w", dir, err)
	}
	f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("static pod directory %s: %w", dir, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("static pod directory %s: %w", dir, err)
	}
	var items []plan.Item
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		target := filepath.Join(hostDir, e.Name())
		items = append(items, plan.Item{
			Kind:   plan.KindStaticPod,
			Target: target,
			Action: k.action(),
			Reason: fmt.Sprintf("static pod %s (kubelet staticPodPath %s)", podName(env, target), dir),
		})
	}
	return items, nil
}

func (k *Kind) action() plan.Action {
	if k.opts.Backup {
		return plan.ActionBackupRemove
	}
	return plan.ActionRemove
}

// podName returns namespace/name from the manifest, best effort: a manifest
// the kubelet cannot parse is still removed.
func podName(env *engine.Env, target string) string {
	fallback := "file " + filepath.Base(target)
	p, err := env.Host.Resolve(target) // a symlink is read where it leads, inside the root
	if err != nil {
		return fallback
	}
	f, err := os.Open(p)
	if err != nil {
		return fallback
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifest))
	if err != nil {
		return fallback
	}
	var m struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if yaml.Unmarshal(b, &m) != nil || m.Metadata.Name == "" {
		return fallback
	}
	ns := m.Metadata.Namespace
	if ns == "" {
		ns = "default" // where the kubelet puts a static pod without one
	}
	return ns + "/" + m.Metadata.Name
}

// Apply moves each manifest into <backup>/static-pods or unlinks it.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	engine.ApplyEach(ctx, items, rec, func(it plan.Item) error { return k.apply(env, it) })
}

func (k *Kind) apply(env *engine.Env, it plan.Item) error {
	if !k.inDirs(env, it.Target) {
		return fmt.Errorf("%s is not directly in a configured static pod directory; re-run plan", it.Target)
	}
	full := env.Host.Path(it.Target)
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // already gone: the goal is met
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s is a %s, not a manifest file; leaving it", it.Target, fi.Mode().Type())
	}
	switch it.Action {
	case plan.ActionRemove:
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	case plan.ActionBackupRemove:
		if env.BackupDir == "" {
			return fmt.Errorf("%s needs a backup directory and none is set; enable backups or plan without them (nothing was removed)", it.Action)
		}
		return fstree.Move(full, filepath.Join(env.BackupDir, "static-pods", filepath.Base(it.Target)))
	}
	return fmt.Errorf("static pod %s: unknown action %q", it.Target, it.Action)
}

func (k *Kind) inDirs(env *engine.Env, target string) bool {
	var dirs []string
	for _, d := range k.opts.Dirs {
		if hostDir, _, err := manifestDir(env, d); err == nil {
			dirs = append(dirs, hostDir)
		}
	}
	return slices.Contains(dirs, filepath.Dir(target))
}
