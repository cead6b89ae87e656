package fstree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// copyTree copies src into final+".partial" and renames that to final when
// every entry was copied. Mount points below src are skipped: removing src
// afterwards keeps and reports them.
func copyTree(src, final string, o *opener) error {
	partial := final + partialSuffix
	sfd, err := unix.Open(filepath.Dir(src), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: filepath.Dir(src), Err: err}
	}
	defer unix.Close(sfd)
	dfd, err := unix.Open(filepath.Dir(final), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: filepath.Dir(final), Err: err}
	}
	defer unix.Close(dfd)
	c := copier{open: o}
	c.copyEntry(&dir{fd: sfd, path: filepath.Dir(src)}, filepath.Base(src), dfd, filepath.Base(partial), src)
	if err := errors.Join(c.errs...); err != nil {
		return fmt.Errorf("copy %s to %s (left for the next run to clean up; the original is untouched): %w", src, partial, err)
	}
	if c.skippedRoot {
		return nil // src itself is a mount point; removing it reports that
	}
	err = unix.Renameat2(dfd, filepath.Base(partial), dfd, filepath.Base(final), unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) {
		err = unix.Renameat(dfd, filepath.Base(partial), dfd, filepath.Base(final))
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", partial, final, err)
	}
	return nil
}

type copier struct {
	open        *opener
	errs        []error
	skippedRoot bool
	depth       int
}

func (c *copier) fail(op, path string, err error) {
	c.errs = append(c.errs, &fs.PathError{Op: op, Path: path, Err: err})
}

// copyEntry copies name from src to dstName in dstFd, keeping type, mode,
// owner and times. A symlink is copied as a link.
func (c *copier) copyEntry(src *dir, name string, dstFd int, dstName, path string) {
	var st unix.Stat_t
	if err := unix.Fstatat(src.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		c.fail("stat", path, err)
		return
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		c.copyDir(src, name, dstFd, dstName, path)
		return
	case unix.S_IFREG:
		if !c.copyFile(src, name, dstFd, dstName, path) {
			return
		}
	case unix.S_IFLNK:
		target, err := readlinkat(src.fd, name)
		if err != nil {
			c.fail("readlink", path, err)
			return
		}
		if err := unix.Symlinkat(target, dstFd, dstName); err != nil {
			c.fail("symlink", path, err)
			return
		}
	default: // fifo, socket, device node
		if err := unix.Mknodat(dstFd, dstName, st.Mode, int(st.Rdev)); err != nil {
			c.fail("mknod", path, err)
			return
		}
	}
	c.setMeta(dstFd, dstName, &st, path)
}

func (c *copier) copyDir(src *dir, name string, dstFd int, dstName, path string) {
	fd, err := c.open.openChild(src, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, errMount) {
		c.skippedRoot = c.skippedRoot || c.depth == 0
		return
	}
	if err != nil {
		c.fail("open", path, err)
		return
	}
	d := &dir{fd: fd, path: path}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		c.fail("stat", path, err)
		return
	}
	if err := unix.Mkdirat(dstFd, dstName, 0o700); err != nil {
		c.fail("mkdir", path, err)
		return
	}
	out, err := unix.Openat(dstFd, dstName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		c.fail("open copy of", path, err)
		return
	}
	defer unix.Close(out)
	f, err := dupDir(d)
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	defer f.Close()
	c.depth++
	for {
		names, err := f.Readdirnames(batch)
		for _, n := range names {
			c.copyEntry(d, n, out, n, filepath.Join(path, n))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			c.fail("read", path, err)
			break
		}
	}
	c.depth--
	// Times last: adding entries changed the copy's mtime.
	c.setMeta(dstFd, dstName, &st, path)
}

func (c *copier) copyFile(src *dir, name string, dstFd int, dstName, path string) bool {
	// O_NONBLOCK: should the entry have become a FIFO, do not hang on it.
	in, err := c.open.openChild(src, name, unix.O_RDONLY|unix.O_NONBLOCK)
	if errors.Is(err, errMount) {
		return false // a file bind mount: removal keeps and reports it
	}
	if err != nil {
		c.fail("open", path, err)
		return false
	}
	inf := os.NewFile(uintptr(in), path)
	defer inf.Close()
	out, err := unix.Openat(dstFd, dstName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		c.fail("create copy of", path, err)
		return false
	}
	outf := os.NewFile(uintptr(out), path+partialSuffix)
	_, err = io.Copy(outf, inf)
	if cerr := outf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.fail("copy", path, err)
		return false
	}
	return true
}

// setMeta gives the copy the original's owner, mode and times. Owner first:
// chown clears set-uid bits.
func (c *copier) setMeta(dstFd int, dstName string, st *unix.Stat_t, path string) {
	if err := unix.Fchownat(dstFd, dstName, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		c.fail("chown copy of", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(dstFd, dstName, st.Mode&0o7777, 0); err != nil {
			c.fail("chmod copy of", path, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dstFd, dstName, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		c.fail("set times on copy of", path, err)
	}
}

func readlinkat(fd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
