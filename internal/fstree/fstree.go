// Package fstree removes and moves directory trees the way a reset must:
// never following a symlink and never crossing into another mount, not even a
// bind mount of the same filesystem. A kubelet directory that still holds a
// mounted volume must lose everything except that volume, and the volume's
// data must survive (k3s#3264, kubernetes#120376).
//
// Every directory is opened relative to its parent's file descriptor, so a
// path component swapped for a symlink while the walk runs cannot redirect
// it. Nothing here forks a process.
package fstree

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// KeptError lists the mount points a removal refused to enter. They are left
// in place together with the directories above them.
type KeptError struct {
	// Paths are the mount points, as the caller named them, sorted.
	Paths []string
}

func (e *KeptError) Error() string {
	return fmt.Sprintf("kept %d mount points: %s; unmount them first", len(e.Paths), strings.Join(e.Paths, ", "))
}

// keptErr returns a *KeptError for paths, or nil when there are none.
func keptErr(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	p := slices.Clone(paths)
	slices.Sort(p)
	return &KeptError{Paths: slices.Compact(p)}
}

// joinKept joins the per-entry errors with one KeptError for all kept paths,
// so that errors.As finds a single list.
func joinKept(kept []string, errs []error) error {
	return errors.Join(append([]error{keptErr(kept)}, errs...)...)
}
