// Package netnstest creates network namespaces the way a CNI runtime does,
// for tests and the sandbox node. The caller must already be inside
// namespaces of its own.
package netnstest

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// threadNetns is the network namespace of the calling thread.
const threadNetns = "/proc/thread-self/ns/net"

// New creates a network namespace (a pod's) and returns a descriptor of it.
// When pin is not "", the namespace is also bind-mounted on pin, an
// existing file, as containerd's CRI pins /run/netns/cni-<uuid>.
//
// The caller's thread stays in its own namespace: the unshare happens on a
// locked thread of a goroutine of its own, and a thread that could not
// switch back stays locked and dies with that goroutine instead of serving
// other goroutines.
func New(pin string) (int, error) {
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open(threadNetns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{-1, err}
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- res{-1, err}
			return
		}
		fd := -1
		if pin != "" {
			err = unix.Mount(threadNetns, pin, "", unix.MS_BIND, "")
		}
		if err == nil {
			fd, err = unix.Open(threadNetns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil && pin != "" {
				_ = unix.Unmount(pin, unix.MNT_DETACH) // no half-made pin left behind
			}
		}
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			ch <- res{-1, fmt.Errorf("return to the caller's network namespace: %w", serr)} // the thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		ch <- res{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}
