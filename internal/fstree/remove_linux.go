package fstree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// batch is how many names are read from a directory at a time, so a
// directory of a million entries does not need a million names in memory.
const batch = 1024

// RemoveAll removes path and everything below it. A symlink is unlinked, never
// followed; a mount point anywhere in the tree (path included) is left in
// place with the directories above it and reported in a *KeptError. A path
// that does not exist is not an error. The components above path are
// resolved as usual; callers that must not follow links there check them
// (the paths kind does).
func RemoveAll(path string) error {
	kept, err := removeAll(path, &opener{})
	return joinKept(kept, []error{err})
}

// EmptyDir removes everything below path and keeps path itself, which may be
// a mount point (only its contents are touched). Entries named in keep are
// left alone. path must be a directory, not a symlink to one.
func EmptyDir(path string, keep ...string) error {
	kept, err := emptyDir(path, keep, &opener{})
	return joinKept(kept, []error{err})
}

func removeAll(path string, o *opener) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	parent, name := filepath.Split(abs)
	if name == "" {
		return nil, fmt.Errorf("refusing to remove %s", abs)
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: parent, Err: err}
	}
	defer unix.Close(pfd)
	r := remover{open: o}
	r.removeEntry(&dir{fd: pfd, path: filepath.Clean(parent)}, name, abs)
	return r.kept, errors.Join(r.errs...)
}

func emptyDir(path string, keep []string, o *opener) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("empty %s: it is a symlink; refusing to empty what it points to", abs)
	case err != nil:
		return nil, &fs.PathError{Op: "empty", Path: abs, Err: err}
	}
	defer unix.Close(fd)
	r := remover{open: o}
	r.removeContents(&dir{fd: fd, path: abs}, keep)
	return r.kept, errors.Join(r.errs...)
}

// remover collects what one removal kept and what failed.
type remover struct {
	open *opener
	kept []string
	errs []error
}

// removeEntry removes name from parent and reports whether it is gone.
func (r *remover) removeEntry(parent *dir, name, path string) bool {
	// Unlink first: most entries are files, and the kernel's answer tells a
	// directory (EISDIR) from a file without a separate stat.
	for range 3 {
		switch err := unix.Unlinkat(parent.fd, name, 0); err {
		case nil, unix.ENOENT:
			return true
		case unix.EBUSY:
			r.kept = append(r.kept, path) // a file bind mount
			return false
		case unix.EISDIR:
		default:
			r.errs = append(r.errs, &fs.PathError{Op: "remove", Path: path, Err: err})
			return false
		}
		fd, err := r.open.openChild(parent, name, unix.O_RDONLY|unix.O_DIRECTORY)
		switch {
		case errors.Is(err, errMount):
			r.kept = append(r.kept, path)
			return false
		case errors.Is(err, unix.ENOENT):
			return true
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
			continue // replaced since the unlink; look again
		case err != nil:
			r.errs = append(r.errs, &fs.PathError{Op: "open", Path: path, Err: err})
			return false
		}
		empty := r.removeContents(&dir{fd: fd, path: path}, nil)
		unix.Close(fd)
		if !empty {
			return false
		}
		switch err := unix.Unlinkat(parent.fd, name, unix.AT_REMOVEDIR); err {
		case nil, unix.ENOENT:
			return true
		case unix.EBUSY:
			r.kept = append(r.kept, path) // mounted while we worked
		default:
			r.errs = append(r.errs, &fs.PathError{Op: "remove", Path: path, Err: err})
		}
		return false
	}
	r.errs = append(r.errs, fmt.Errorf("remove %s: it keeps changing type while being removed; stop whatever writes there and retry", path))
	return false
}

// removeContents removes every entry of d except keep and reports whether
// nothing else is left.
func (r *remover) removeContents(d *dir, keep []string) bool {
	f, err := dupDir(d)
	if err != nil {
		r.errs = append(r.errs, err)
		return false
	}
	defer f.Close()
	// Entries removed while reading can make the kernel skip others, so
	// passes repeat until one removes nothing. Names that failed or were
	// kept are not tried again.
	failed := map[string]bool{}
	for {
		removed := false
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			r.errs = append(r.errs, &fs.PathError{Op: "read", Path: d.path, Err: err})
			return false
		}
		for {
			names, err := f.Readdirnames(batch)
			for _, n := range names {
				if failed[n] || slices.Contains(keep, n) {
					continue
				}
				if r.removeEntry(d, n, filepath.Join(d.path, n)) {
					removed = true
				} else {
					failed[n] = true
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				r.errs = append(r.errs, &fs.PathError{Op: "read", Path: d.path, Err: err})
				return false
			}
		}
		if !removed {
			return len(failed) == 0
		}
	}
}

// dupDir wraps a duplicate of d's descriptor in an *os.File for reading
// names; closing it leaves d open.
func dupDir(d *dir) (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(d.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "dup", Path: d.path, Err: err}
	}
	return os.NewFile(uintptr(fd), d.path), nil
}
