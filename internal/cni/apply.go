package cni

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/nodereset/nodereset/internal/fstree"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// ChangedError refuses an item whose file no longer is what was planned:
// a config rewritten by someone else since, a directory swapped for a link.
type ChangedError struct {
	Target string
	Why    string
}

func (e *ChangedError) Error() string {
	return fmt.Sprintf("refusing %s: %s since it was planned; run plan again", e.Target, e.Why)
}

// Apply implements engine.Kind: state before kubeconfigs before configs
// (see rank), one item at a time; each is a few syscalls.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	order := slices.Clone(items)
	slices.SortStableFunc(order, func(a, b plan.Item) int { return rank(detailOf(a).What) - rank(detailOf(b).What) })
	hold := k.opts.Hold != nil && k.opts.Hold()
	for _, it := range order {
		if err := ctx.Err(); err != nil {
			rec.Done(it, fmt.Errorf("cni file %s not removed: %w", it.Target, err))
			continue
		}
		if w := detailOf(it).What; hold && (w == WhatConfig || w == WhatKubeconfig) {
			rec.Done(it, fmt.Errorf("cni file %s kept: the container runtime was down and still holds Kubernetes sandboxes, which it removes only with the CNI config; start the runtime and run reset again", it.Target))
			continue
		}
		rec.Start(it)
		rec.Done(it, k.apply(env, it))
	}
}

func (k *Kind) apply(env *engine.Env, it plan.Item) error {
	d := detailOf(it)
	if !k.mine(it.Target, d) {
		return fmt.Errorf("cni file %s: not below %s, %s or a configured state dir; run plan again", it.Target, k.opts.ConfDir, k.opts.LibDir)
	}
	full, err := seenPath(env.Host, it.Target)
	if err != nil {
		return fmt.Errorf("cni file %s: %w", it.Target, err)
	}
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // gone already: a re-run after a crash
	}
	if err != nil {
		return fmt.Errorf("cni file %s: %w", it.Target, err)
	}
	if err := same(it.Target, full, fi, d); err != nil {
		return err
	}
	var dst string
	if it.Action == plan.ActionBackupRemove {
		if env.BackupDir == "" {
			return fmt.Errorf("cni file %s: backup-remove needs a backup directory and none is set (nothing was removed); enable backups or plan without them", it.Target)
		}
		if host.Under(env.BackupDir, full) {
			return fmt.Errorf("cni file %s: the backup directory %s lies inside it; choose one outside", it.Target, env.BackupDir)
		}
		dst = filepath.Join(env.BackupDir, "cni", it.Target)
		err = fstree.Move(full, dst)
	} else {
		err = fstree.RemoveAll(full)
	}
	if err != nil {
		return fmt.Errorf("%s cni file %s: %w", it.Action, it.Target, err)
	}
	logger(env).Info("cni file removed", "kind", plan.KindCNIFile, "target", it.Target, "what", d.What, "backup", dst)
	return nil
}

// mine reports whether target lies where this kind's options say CNI files
// are: a plan file edited to name /home would be refused here.
func (k *Kind) mine(target string, d Detail) bool {
	switch d.What {
	case WhatConfig, WhatKubeconfig:
		return host.Under(target, k.opts.ConfDir) && target != k.opts.ConfDir
	case WhatIPAM:
		return filepath.Dir(target) == filepath.Join(k.opts.LibDir, "networks")
	case WhatResult:
		return filepath.Dir(target) == filepath.Join(k.opts.LibDir, "results")
	case WhatState:
		return slices.Contains(k.stateDirs(), target)
	}
	return false
}

// same checks that what is at full is still what Discover planned.
func same(target, full string, fi fs.FileInfo, d Detail) error {
	switch d.What {
	case WhatConfig:
		if !fi.Mode().IsRegular() {
			return &ChangedError{Target: target, Why: "it is no longer a regular file"}
		}
		c, err := readConfig(full, target)
		if err != nil || c.Owner != d.Owner || c.Name != d.Network {
			return &ChangedError{Target: target, Why: fmt.Sprintf("it is no longer %s's config of network %q", d.Owner, d.Network)}
		}
	case WhatKubeconfig, WhatResult:
		if !fi.Mode().IsRegular() {
			return &ChangedError{Target: target, Why: "it is no longer a regular file"}
		}
	case WhatIPAM, WhatState:
		if !fi.IsDir() {
			return &ChangedError{Target: target, Why: "it is no longer a directory (" + fi.Mode().Type().String() + ")"}
		}
	}
	return nil
}
