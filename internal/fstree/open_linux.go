package fstree

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// errMount marks a child that lies on another mount than its parent.
var errMount = errors.New("is a mount point")

// dir is an open directory. dev and mnt identify its mount for the fallback
// check; they are filled on first use.
type dir struct {
	fd      int
	path    string
	idDone  bool
	dev     uint64
	mnt     uint64
	haveMnt bool
}

// opener opens a child of an open directory without following a symlink and
// without entering another mount. It prefers openat2(2), which the kernel
// enforces atomically; on kernels without it (ENOSYS, before 5.6) it opens
// with O_NOFOLLOW and then compares the opened object's st_dev and mount ID
// with its parent's, which catches bind mounts of the same filesystem too.
type opener struct {
	noOpenat2 bool
}

// openChild opens name below parent with flags (O_NOFOLLOW and O_CLOEXEC are
// added). A child on another mount yields errMount, a symlink ELOOP.
func (o *opener) openChild(parent *dir, name string, flags int) (int, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if !o.noOpenat2 {
		how := unix.OpenHow{
			Flags:   uint64(flags),
			Resolve: unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH,
		}
		for range 16 {
			fd, err := unix.Openat2(parent.fd, name, &how)
			switch err {
			case nil:
				return fd, nil
			case unix.EINTR, unix.EAGAIN:
				// EAGAIN: a concurrent rename made the kernel unsure; retry.
				continue
			case unix.EXDEV:
				return -1, errMount
			case unix.ENOSYS:
				o.noOpenat2 = true
			default:
				return -1, err
			}
			break
		}
		if !o.noOpenat2 {
			return -1, fmt.Errorf("open %s/%s: kernel kept answering EAGAIN", parent.path, name)
		}
	}
	fd, err := unix.Openat(parent.fd, name, flags, 0)
	if err != nil {
		return -1, err
	}
	// Checked on the opened object, not on the name, so a swap between the
	// check and the open cannot slip through.
	if err := o.sameMount(parent, fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (o *opener) sameMount(parent *dir, fd int) error {
	if !parent.idDone {
		dev, mnt, ok, err := mountID(parent.fd)
		if err != nil {
			return fmt.Errorf("stat %s: %w", parent.path, err)
		}
		parent.dev, parent.mnt, parent.haveMnt, parent.idDone = dev, mnt, ok, true
	}
	dev, mnt, ok, err := mountID(fd)
	if err != nil {
		return err
	}
	if dev != parent.dev || (ok && parent.haveMnt && mnt != parent.mnt) {
		return errMount
	}
	return nil
}

// mountID returns the device and, when the kernel can tell, the mount ID of
// an open file: statx STATX_MNT_ID (5.8+), else name_to_handle_at (2.6.39+).
func mountID(fd int) (dev, mnt uint64, ok bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, 0, false, err
	}
	var stx unix.Statx_t
	err = unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx)
	if err == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
		return st.Dev, stx.Mnt_id, true, nil
	}
	if _, id, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH); err == nil {
		return st.Dev, uint64(id), true, nil
	}
	return st.Dev, 0, false, nil
}
