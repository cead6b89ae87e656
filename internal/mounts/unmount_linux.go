package mounts

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// unmounter is the one place mounts change; tests replace it to check order
// and concurrency without a kernel.
type unmounter interface {
	// Unmount unmounts the mount id at point, refusing when the path now
	// shows a different mount.
	Unmount(point string, id int, lazy bool) error
}

// ErrNotVisible means the path shows another mount than the planned one
// (it was shadowed or replaced), so unmounting by path would hit the wrong one.
var ErrNotVisible = errors.New("path shows a different mount than planned")

type sysUnmounter struct{}

func (sysUnmounter) Unmount(point string, id int, lazy bool) error {
	// statx reports the ID of the mount the path lands on, the same ID as
	// mountinfo's; older kernels leave the mask bit clear and we go by the
	// mount table alone.
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, point, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_MNT_ID, &st)
	if err != nil {
		return fmt.Errorf("stat mount point: %w", err)
	}
	if st.Mask&unix.STATX_MNT_ID != 0 && int(st.Mnt_id) != id {
		return fmt.Errorf("%w: mount id %d, planned %d", ErrNotVisible, st.Mnt_id, id)
	}
	flags := unix.UMOUNT_NOFOLLOW
	if lazy {
		flags |= unix.MNT_DETACH
	}
	for {
		err = unix.Unmount(point, flags)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
