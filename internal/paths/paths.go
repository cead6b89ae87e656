// Package paths is the kind "path": files and directories a profile names as
// written by Kubernetes components (/var/lib/kubelet, /etc/kubernetes/pki...).
// It removes or empties them, optionally into the run's backup directory,
// through fstree, so a leftover mount or a symlink to user data is never
// followed.
package paths

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

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Spec is one path a profile owns.
type Spec struct {
	// Path is the host-side absolute path.
	Path string
	// Action is ActionRemove, ActionEmpty, ActionBackupRemove or
	// ActionBackupEmpty.
	Action plan.Action
	// Keep names children that Empty and BackupEmpty leave alone
	// ("manifests" for /etc/kubernetes, whose files another kind handles).
	Keep []string
	// Reason says why the path is Kubernetes-owned.
	Reason string
}

// Options configure the kind.
type Options struct {
	Specs []Spec
	// Backup turns the Backup* actions on; without it they are planned as
	// their plain counterparts.
	Backup bool
}

// Kind implements engine.Kind for plan.KindPath.
type Kind struct {
	opts Options
}

var _ engine.Kind = (*Kind)(nil)

// New returns the kind for opts.
func New(opts Options) *Kind { return &Kind{opts: opts} }

// Kind names the items this kind produces.
func (k *Kind) Kind() plan.Kind { return plan.KindPath }

// action is spec's action with backups applied or dropped.
func (k *Kind) action(s Spec) plan.Action {
	if k.opts.Backup {
		return s.Action
	}
	switch s.Action {
	case plan.ActionBackupRemove:
		return plan.ActionRemove
	case plan.ActionBackupEmpty:
		return plan.ActionEmpty
	}
	return s.Action
}

func isEmptyAction(a plan.Action) bool {
	return a == plan.ActionEmpty || a == plan.ActionBackupEmpty
}

// Discover lists each spec whose path exists and, for the Empty actions,
// holds more than its Keep entries. It only lstats and reads directories.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	var items []plan.Item
	var errs []error
	for _, s := range k.opts.Specs {
		if err := ctx.Err(); err != nil {
			return items, err
		}
		it, ok, err := k.discover(env, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			items = append(items, it)
		}
	}
	return items, errors.Join(errs...)
}

func (k *Kind) discover(env *engine.Env, s Spec) (plan.Item, bool, error) {
	it := plan.Item{Kind: plan.KindPath, Target: filepath.Clean(s.Path), Action: k.action(s), Reason: s.Reason}
	if err := validSpec(s); err != nil {
		return it, false, err
	}
	if err := noLinkAbove(env.Host, it.Target); err != nil {
		// Shown in the plan, refused by Apply: what the link leads to
		// is not what the profile named. Only listed when there is
		// something at the far end.
		res, rerr := env.Host.Resolve(it.Target)
		if rerr != nil {
			return it, false, nil
		}
		if _, serr := os.Lstat(res); serr != nil {
			return it, false, nil
		}
		it.Reason = joinReason(s.Reason, "refused: "+err.Error())
		return it, true, nil
	}
	full := env.Host.Path(it.Target)
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return it, false, nil
	}
	if err != nil {
		return it, false, fmt.Errorf("path %s: %w", it.Target, err)
	}
	if !fi.IsDir() {
		if isEmptyAction(it.Action) {
			env.Log.Warn("path to empty is not a directory; leaving it", "path", it.Target, "mode", fi.Mode().String())
			return it, false, nil
		}
		it.Reason = joinReason(s.Reason, describe(fi))
		return it, true, nil
	}
	n, err := countEntries(full, keepFor(it.Action, s))
	if err != nil {
		return it, false, fmt.Errorf("path %s: %w", it.Target, err)
	}
	if n == 0 && isEmptyAction(it.Action) {
		return it, false, nil
	}
	it.Reason = joinReason(s.Reason, plural(n, "entry", "entries"))
	return it, true, nil
}

func validSpec(s Spec) error {
	if !filepath.IsAbs(s.Path) || filepath.Clean(s.Path) == "/" {
		return fmt.Errorf("path spec %q: need an absolute path below /", s.Path)
	}
	switch s.Action {
	case plan.ActionRemove, plan.ActionEmpty, plan.ActionBackupRemove, plan.ActionBackupEmpty:
		return nil
	}
	return fmt.Errorf("path spec %s: unknown action %q", s.Path, s.Action)
}

func keepFor(a plan.Action, s Spec) []string {
	if isEmptyAction(a) {
		return s.Keep
	}
	return nil
}

// noLinkAbove refuses a path whose parent components include a symlink: the
// kernel would follow it, possibly out of the host root, and what is at the
// end is not what the profile named.
func noLinkAbove(h *host.Host, target string) error {
	parts := strings.Split(strings.TrimPrefix(filepath.Clean(target), "/"), "/")
	cur := "/"
	for _, p := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, p)
		fi, err := os.Lstat(h.Path(cur))
		if errors.Is(err, fs.ErrNotExist) {
			return nil // nothing below can exist either
		}
		if err != nil {
			return fmt.Errorf("%s: %w", cur, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			dest, _ := os.Readlink(h.Path(cur))
			return fmt.Errorf("%s is a symlink (to %s); name the path it leads to in the profile instead of %s", cur, dest, target)
		}
		if !fi.IsDir() {
			return nil
		}
	}
	return nil
}

func countEntries(dir string, keep []string) (int, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(1024)
		for _, name := range names {
			if !slices.Contains(keep, name) {
				n++
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func describe(fi fs.FileInfo) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "symlink"
	case fi.Mode().IsRegular():
		return "file"
	}
	return fi.Mode().Type().String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func joinReason(reason, detail string) string {
	if reason == "" {
		return detail
	}
	return reason + " (" + detail + ")"
}
