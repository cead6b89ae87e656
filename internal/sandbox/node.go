package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodereset/nodereset/pkg/host"
	"golang.org/x/sys/unix"
)

// Options configure Start.
type Options struct {
	// Nodesim is the nodesim binary; it becomes the namespace init, the fake
	// components and the in-namespace checker.
	Nodesim string
	// Root is the directory the node's / is planted on (a tmpfs mounted
	// there inside the sandbox; the directory itself stays empty outside).
	Root string
	// State is a directory outside Root for manifest.json, init.pid, init.log.
	State         string
	Pods, Volumes int
	// Profile is the distribution layout to plant (default "kubeadm").
	Profile string
	// Features are optional parts of the node, e.g. "network",
	// "containerd", "docker" (see features.go).
	Features []string
	// Detach keeps the sandbox running after the starting process exits
	// (nodesim up). Otherwise the kernel kills it with that process, so a
	// crashed test leaves nothing behind.
	Detach bool
	// Timeout bounds the wait for readiness (default 30 s).
	Timeout time.Duration
}

// Node is a running sandbox.
type Node struct {
	m       Manifest
	state   string
	nodesim string
	cmd     *exec.Cmd // nil when opened from a state directory
	closed  bool
}

// Start starts a sandbox node and returns once it is fully planted.
func Start(ctx context.Context, o Options) (*Node, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	if n, err := Open(o.State, o.Nodesim); err == nil && n.alive() {
		return nil, fmt.Errorf("a sandbox is already up with state %s (init pid %d): run nodesim down --state %s first", o.State, n.m.InitPID, o.State)
	}
	for _, f := range []string{ManifestFile, InitPIDFile} {
		_ = os.Remove(filepath.Join(o.State, f))
	}
	logPath := filepath.Join(o.State, InitLogFile)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create sandbox log: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(o.Nodesim, "init", "--root", o.Root, "--state", o.State,
		"--pods", strconv.Itoa(o.Pods), "--volumes", strconv.Itoa(o.Volumes),
		"--profile", o.Profile, "--with", strings.Join(o.Features, ","))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET,
		Setsid:     true,
	}
	if !o.Detach {
		// Tied to the starting thread; the Go runtime does not retire
		// threads of goroutines that never locked one, so it lasts.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("start sandbox init %s: %w", o.Nodesim, err)
	}
	n := &Node{state: o.State, nodesim: o.Nodesim, cmd: cmd}
	if err := waitReady(ctx, r, o.Timeout); err != nil {
		_ = n.Close()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("sandbox did not come up: %w\n%s:\n%s", err, logPath, log)
	}
	if n.m, err = ReadManifest(o.State); err != nil {
		_ = n.Close()
		return nil, err
	}
	if n.m.InitPID != cmd.Process.Pid {
		_ = n.Close()
		return nil, fmt.Errorf("sandbox init reports pid %d, started pid %d: is nodesim up itself in a PID namespace without its own /proc?", n.m.InitPID, cmd.Process.Pid)
	}
	return n, nil
}

func (o *Options) normalize() error {
	var err error
	for _, p := range []*string{&o.Nodesim, &o.Root, &o.State} {
		if *p == "" {
			return errors.New("sandbox: Nodesim, Root and State must all be set")
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if o.Root == "/" {
		return errors.New("sandbox root must not be /: pass a scratch directory")
	}
	if host.Under(o.State, o.Root) || host.Under(o.Root, o.State) {
		return fmt.Errorf("sandbox state %s and root %s must not contain each other: the root is hidden under a tmpfs inside", o.State, o.Root)
	}
	if o.Pods < 0 || o.Volumes < 0 {
		return fmt.Errorf("sandbox pods (%d) and volumes (%d) must not be negative", o.Pods, o.Volumes)
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	for _, d := range []string{o.Root, o.State} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create sandbox directory: %w", err)
		}
	}
	return nil
}

// waitReady reads init's readiness line; EOF first means init died.
func waitReady(ctx context.Context, r *os.File, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(r, 64))
		switch {
		case bytes.HasPrefix(b, []byte("ok\n")):
			done <- nil
		case err != nil:
			done <- err
		default:
			done <- errors.New("init exited before it was ready")
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("not ready after %v", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Open attaches to a sandbox started elsewhere (by nodesim up) from its
// state directory; nodesim is the binary used for checks inside.
func Open(state, nodesim string) (*Node, error) {
	state, err := filepath.Abs(state)
	if err != nil {
		return nil, err
	}
	m, err := ReadManifest(state)
	if err != nil {
		return nil, err
	}
	return &Node{m: m, state: state, nodesim: nodesim}, nil
}

// Manifest returns what the sandbox planted.
func (n *Node) Manifest() Manifest { return n.m }

// State is the state directory.
func (n *Node) State() string { return n.state }

// Command runs name inside the sandbox's mount, PID and network namespaces.
// nsenter is used because Go cannot setns into a mount namespace from a
// multi-threaded process. nsenter changes into the sandbox's root
// directory (the real /), so pass absolute paths.
//
// When init is gone the command fails to start: nsenter into a recycled
// PID would run it in some other process's namespaces, the real host's.
func (n *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	a := append([]string{"-t", strconv.Itoa(n.m.InitPID), "-m", "-p", "-n", "--", name}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", a...)
	if !n.alive() {
		cmd.Err = fmt.Errorf("sandbox init %d is gone (or its PID now names another process): start it again with nodesim up --state %s", n.m.InitPID, n.state)
	}
	return cmd
}

// alive reports whether the manifest's init is still the same process.
func (n *Node) alive() bool {
	if n.m.InitPID <= 0 || !procAlive("/proc", n.m.InitPID) {
		return false
	}
	st, err := procStart("/proc", n.m.InitPID)
	return err == nil && st == n.m.InitStart
}

// Close stops the sandbox: SIGTERM to init, SIGKILL after 5 s. Init's
// exit takes every process, mount and interface of the sandbox with it.
func (n *Node) Close() error {
	if n.closed {
		return nil
	}
	n.closed = true
	defer func() {
		for _, f := range []string{ManifestFile, InitPIDFile} {
			_ = os.Remove(filepath.Join(n.state, f))
		}
	}()
	if n.cmd != nil {
		return stopOwned(n.cmd)
	}
	if !n.alive() {
		return nil // gone already, or the PID now names another process
	}
	// A pidfd-backed handle: once found, signals cannot hit a recycled PID.
	p, err := os.FindProcess(n.m.InitPID)
	if err != nil {
		return nil
	}
	if !n.alive() {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	if n.waitGone(5 * time.Second) {
		return nil
	}
	_ = p.Signal(syscall.SIGKILL)
	if n.waitGone(2 * time.Second) {
		return nil
	}
	return fmt.Errorf("sandbox init %d survived SIGKILL; check %s", n.m.InitPID, filepath.Join(n.state, InitLogFile))
}

func (n *Node) waitGone(d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !n.alive() {
			return true
		}
	}
	return !n.alive()
}

func stopOwned(cmd *exec.Cmd) error {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
		return nil
	case <-time.After(2 * time.Second):
		return fmt.Errorf("sandbox init %d survived SIGKILL", cmd.Process.Pid)
	}
}
