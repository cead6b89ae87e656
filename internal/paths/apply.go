package paths

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/nodereset/nodereset/internal/fstree"
	"github.com/nodereset/nodereset/internal/mounts"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Apply removes, empties or backs up each item in order. Items are
// independent: one failing does not stop the others.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	engine.ApplyEach(ctx, items, rec, func(it plan.Item) error { return k.apply(env, it) })
}

func (k *Kind) apply(env *engine.Env, it plan.Item) error {
	s, ok := k.spec(it.Target)
	if !ok {
		return fmt.Errorf("path %s is not in this profile's path list; re-run plan", it.Target)
	}
	// The spec, not the item, says what to keep: the item may have come
	// back from a JSON plan file.
	keep := keepFor(it.Action, s)
	if err := noLinkAbove(env.Host, it.Target); err != nil {
		return fmt.Errorf("refusing %s: %w", it.Target, err)
	}
	full := env.Host.Path(it.Target)
	// A process still working below the path (an etcd that survived its
	// kill, a kubelet outside systemd's reach) would write into what is
	// being copied to the backup or removed: a torn backup, or files pulled
	// from under it. Refuse; a rerun once it is stopped (or, for a container
	// runtime, once its pods are removed) finishes the job.
	if hs, err := mounts.Holders(env.Host.Proc(), full); err != nil {
		return fmt.Errorf("%s: look for processes using it: %w", it.Target, err)
	} else if len(hs) > 0 {
		return inUse(env.Host, it.Target, hs)
	}
	var dst string
	if it.Action == plan.ActionBackupRemove || it.Action == plan.ActionBackupEmpty {
		if env.BackupDir == "" {
			return fmt.Errorf("%s needs a backup directory and none is set; enable backups or plan without them (nothing was removed)", it.Action)
		}
		if host.Under(env.BackupDir, full) {
			return fmt.Errorf("backup directory %s lies inside %s; choose one outside it", env.BackupDir, it.Target)
		}
		dst = filepath.Join(env.BackupDir, "files", it.Target)
	}
	var err error
	switch it.Action {
	case plan.ActionRemove:
		err = fstree.RemoveAll(full)
	case plan.ActionEmpty:
		err = fstree.EmptyDir(full, keep...)
	case plan.ActionBackupRemove:
		err = fstree.Move(full, dst)
	case plan.ActionBackupEmpty:
		err = fstree.MoveContents(full, dst, keep)
	default:
		return fmt.Errorf("path %s: unknown action %q", it.Target, it.Action)
	}
	if err != nil {
		var ke *fstree.KeptError
		if errors.As(err, &ke) {
			// Name them as the operator knows them: host-side paths.
			for i, p := range ke.Paths {
				if rel, rerr := env.Host.Rel(p); rerr == nil {
					ke.Paths[i] = rel
				}
			}
			env.Log.Warn("left mount points in place", "path", it.Target, "kept", ke.Paths)
		}
		return fmt.Errorf("%s %s: %w", it.Action, it.Target, err)
	}
	env.Log.Info("path cleaned", "path", it.Target, "action", string(it.Action), "backup", dst)
	return nil
}

func (k *Kind) spec(target string) (Spec, bool) {
	for _, s := range k.opts.Specs {
		if filepath.Clean(s.Path) == target {
			return s, true
		}
	}
	return Spec{}, false
}
