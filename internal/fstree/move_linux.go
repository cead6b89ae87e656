package fstree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// partialSuffix marks a copy in progress. A leftover one is the remains of a
// crashed run and is removed before the name is used again.
const partialSuffix = ".partial"

// Move moves src to dst. On one filesystem it is a rename(2); across
// filesystems (or when src holds a mount point) it copies into
// dst+".partial" without following symlinks and without entering mounts,
// renames the copy to dst once complete, and only then removes src. When dst
// exists, dst.1, dst.2, ... is used instead. Missing parents of dst are
// created with mode 0700. Mount points below src stay in place and are
// reported in a *KeptError; a mount point at src moves nothing.
func Move(src, dst string) error {
	kept, err := move(src, dst, &opener{})
	return joinKept(kept, []error{err})
}

// MoveContents moves every entry of srcDir except the names in keep into
// dstDir, each as Move does. A missing srcDir is not an error.
func MoveContents(srcDir, dstDir string, keep []string) error {
	f, err := os.OpenFile(srcDir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("move contents of %s: %w (it must be a directory, not a symlink)", srcDir, err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("move contents of %s: %w", srcDir, err)
	}
	slices.Sort(names)
	o := &opener{}
	var kept []string
	var errs []error
	for _, n := range names {
		if slices.Contains(keep, n) {
			continue
		}
		k, err := move(filepath.Join(srcDir, n), filepath.Join(dstDir, n), o)
		kept = append(kept, k...)
		errs = append(errs, err)
	}
	return joinKept(kept, errs)
}

func move(src, dst string, o *opener) ([]string, error) {
	src, dst = filepath.Clean(src), filepath.Clean(dst)
	if dst == src || isUnder(dst, src) {
		return nil, fmt.Errorf("move %s to %s: the destination is inside the source", src, dst)
	}
	if _, err := os.Lstat(src); err != nil {
		return nil, fmt.Errorf("move %s: %w", src, err)
	}
	self, below, err := mountsAt(src)
	if err != nil {
		return nil, err
	}
	if self {
		return []string{src}, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return nil, fmt.Errorf("create backup directory: %w", err)
	}
	final, err := freeName(dst, o)
	if err != nil {
		return nil, err
	}
	if !below {
		// A rename would carry mounts below src along, out of sight of
		// whoever unmounts them; with mounts below, copy around them.
		err := rename(src, final)
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("move %s to %s: %w", src, final, err)
		}
	}
	if err := copyTree(src, final, o); err != nil {
		return nil, err
	}
	kept, err := removeAll(src, o)
	if err != nil {
		err = fmt.Errorf("copied %s to %s, but removing the original: %w", src, final, err)
	}
	return kept, err
}

// freeName returns dst or the first free dst.N, after removing a leftover
// partial copy for that name.
func freeName(dst string, o *opener) (string, error) {
	for i := 0; i < 10000; i++ {
		cand := dst
		if i > 0 {
			cand = dst + "." + strconv.Itoa(i)
		}
		_, err := os.Lstat(cand)
		if err == nil {
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("backup destination %s: %w", cand, err)
		}
		kept, err := removeAll(cand+partialSuffix, o)
		if err := joinKept(kept, []error{err}); err != nil {
			return "", fmt.Errorf("remove leftover partial copy %s: %w", cand+partialSuffix, err)
		}
		return cand, nil
	}
	return "", fmt.Errorf("backup destination %s: 10000 names taken; clean up old backups", dst)
}

// rename refuses to replace an existing destination where the filesystem
// supports it.
func rename(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		err = unix.Rename(src, dst) // freeName just saw dst free
	}
	return err
}

// mountsAt reports whether src is a mount point and whether any mount lies
// below it, from this process's mount table.
func mountsAt(src string) (self, below bool, err error) {
	parent, err := filepath.EvalSymlinks(filepath.Dir(src))
	if err != nil {
		return false, false, fmt.Errorf("move %s: %w", src, err)
	}
	real := filepath.Join(parent, filepath.Base(src))
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(real))
	if err != nil {
		return false, false, fmt.Errorf("read the mount table: %w (is /proc mounted?)", err)
	}
	for _, m := range ms {
		if filepath.Clean(m.Mountpoint) == real {
			self = true
		} else {
			below = true
		}
	}
	return self, below, nil
}

func isUnder(p, dir string) bool {
	return dir == "/" || (len(p) > len(dir) && p[:len(dir)] == dir && p[len(dir)] == '/')
}
