package sandbox

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// InitOptions configure RunInit.
type InitOptions struct {
	Root, State   string
	Pods, Volumes int
	Profile       string
	Features      []string
	// Ready receives "ok\n" once the node is fully planted and the manifest
	// written; closing it without that tells the parent init failed.
	Ready *os.File
	Log   *log.Logger
}

// RunInit is PID 1 of the sandbox's new mount, PID and network namespaces:
// it plants the node, reports ready, then reaps orphans until SIGTERM, when
// it kills what it started and returns (the kernel kills whatever else is
// left in the PID namespace once PID 1 exits).
func RunInit(o InitOptions) error {
	t0 := time.Now()
	if os.Getpid() != 1 {
		return fmt.Errorf("nodesim init must be PID 1 of a new PID namespace (it is pid %d): start it with nodesim up", os.Getpid())
	}
	// Private first, before any mount: with a shared / the mounts planted
	// below would propagate to the real host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// The inherited /proc still belongs to the parent's PID namespace, so
	// /proc/self there names this process as the parent sees it.
	hostPID, hostStart, err := parentView()
	if err != nil {
		return err
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount a fresh /proc: %w", err)
	}
	if err := loUp(); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", o.Root, "tmpfs", 0, "mode=755"); err != nil {
		return fmt.Errorf("mount the sandbox root tmpfs on %s: %w", o.Root, err)
	}
	// The root's /run and /var/lib become the sandbox's own: tools run
	// inside (libmount's /run/mount/utab, iptables' /run/xtables.lock,
	// containerd's /run/containerd and /run/netns, CNI's /var/lib/cni) then
	// never write the real host's, and what they hard-code lands where
	// nodereset looks for it under --host-root.
	for _, d := range []string{"/run", "/var/lib"} {
		if err := os.MkdirAll(filepath.Join(o.Root, d), 0o755); err != nil {
			return err
		}
		if err := unix.Mount(filepath.Join(o.Root, d), d, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind the sandbox's %s over %s: %w", filepath.Join(o.Root, d), d, err)
		}
	}
	// Notify before the first child starts, so no SIGCHLD or SIGTERM is lost.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)

	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("read own executable to copy as the fake components: %w", err)
	}
	m := Manifest{Root: o.Root, InitPID: hostPID, InitStart: hostStart, Pods: o.Pods, Volumes: o.Volumes}
	b := &builder{root: o.Root, m: &m}
	layout, err := profileLayout(o.Profile)
	if err != nil {
		return err
	}
	feats, err := lookupFeatures(o.Features)
	if err != nil {
		return err
	}
	layout(b, o.Pods, o.Volumes)
	for _, f := range feats {
		if f.plant != nil {
			f.plant(b)
		}
	}
	if b.err != nil {
		return fmt.Errorf("plant the node under %s: %w", o.Root, b.err)
	}
	tLayout := time.Now()
	procs, err := startProcesses(b, self, profileProcSpecs(o.Profile))
	if err != nil {
		killAll(procs)
		return err
	}
	var stops []func()
	defer func() {
		// Features stop in reverse order: pods before their runtime.
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	for _, f := range feats {
		if f.start == nil {
			continue
		}
		stop, err := f.start(b, self)
		if stop != nil {
			stops = append(stops, stop)
		}
		if err != nil {
			killAll(procs)
			return fmt.Errorf("start sandbox feature: %w", err)
		}
	}
	if err := writeManifest(o.State, m); err != nil {
		killAll(procs)
		return err
	}
	if err := writeAtomic(filepath.Join(o.State, InitPIDFile), []byte(strconv.Itoa(hostPID)+"\n")); err != nil {
		killAll(procs)
		return err
	}
	o.Log.Printf("ready: layout %v, processes %v, %d expected items, %d decoy files",
		tLayout.Sub(t0).Round(time.Millisecond), time.Since(tLayout).Round(time.Millisecond),
		len(m.Expected), len(m.Decoys.Files))
	if _, err := o.Ready.Write([]byte("ok\n")); err != nil {
		killAll(procs)
		return fmt.Errorf("signal readiness: %w", err)
	}
	o.Ready.Close()

	for s := range sigs {
		if s == syscall.SIGCHLD {
			reap()
			continue
		}
		o.Log.Printf("%v: killing %d processes and exiting", s, len(procs))
		killAll(procs)
		return nil
	}
	return nil
}

func parentView() (int, uint64, error) {
	s, err := os.Readlink("/proc/self")
	if err != nil {
		return 0, 0, fmt.Errorf("read own PID as the parent sees it: %w", err)
	}
	pid, err := strconv.Atoi(s)
	if err != nil {
		return 0, 0, fmt.Errorf("read own PID: /proc/self -> %q", s)
	}
	st, err := procStart("/proc", pid)
	if err != nil {
		return 0, 0, fmt.Errorf("read own start time: %w", err)
	}
	return pid, st, nil
}

func loUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in the new network namespace: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// reap collects every exited child; as PID 1 init inherits all orphans.
func reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// killAll SIGKILLs the processes init started: SIGTERM would not stop the
// fake etcd, and nothing here has state to flush.
func killAll(procs []*os.Process) {
	for _, p := range procs {
		_ = p.Kill()
	}
}
