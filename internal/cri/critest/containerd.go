// Package critest runs a real containerd (the Debian package) with CRI,
// runc and the CNI bridge plugin in the caller's namespaces, and creates
// pods through CRI the way the kubelet does. Tests and the sandbox node use
// it; the caller must already be inside namespaces of its own, with a
// private /run and /var/lib/cni (containerd and CNI hard-code paths there).
package critest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	rt "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Commands returns the executables the harness needs, for a test's
// prerequisite check.
func Commands() []string {
	return []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", Busybox}
}

// Config places one containerd. Every path is as the caller sees it.
type Config struct {
	// Root and State are containerd's root and state directories.
	Root, State string
	// Socket is the gRPC socket (short enough for sun_path: < 108 bytes).
	Socket string
	// ConfigFile is where the generated config.toml is written.
	ConfigFile string
	// CNIConfDir receives a bridge conflist (cni0, Subnet).
	CNIConfDir string
	Subnet     string
	// BridgeOnly drops ipMasq and portmap from the conflist: no iptables
	// calls per pod (as with flannel, which masquerades by itself).
	BridgeOnly bool
	// Log receives containerd's output (nil: discarded).
	Log io.Writer
}

// Containerd is a running containerd.
type Containerd struct {
	cfg  Config
	cmd  *exec.Cmd
	done chan struct{}
	cc   *grpc.ClientConn
	// RS is a CRI runtime client on the socket.
	RS rt.RuntimeServiceClient
}

// configTOML is containerd 1.6's config (version 2). restrict_oom_score_adj
// is required where CAP_SYS_RESOURCE is missing (this CI machine): the pause
// container's oom_score_adj -998 would fail every RunPodSandbox.
const configTOML = `version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = %q
    netns_mounts_under_state_dir = false
    disable_apparmor = true
    enable_selinux = false
    tolerate_missing_hugetlb_controller = true
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = %q
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
`

const conflist = `{"cniVersion": "1.0.0", "name": "nodesim", "plugins": [
 {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
 {"type": "portmap", "capabilities": {"portMappings": true}}]}
`

const bridgeOnly = `{"cniVersion": "1.0.0", "name": "nodesim", "plugins": [
 {"type": "bridge", "bridge": "cni0", "isGateway": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
`

// Start writes the config and CNI conflist, starts containerd, waits until
// CRI answers and imports the pause and busybox images into the k8s.io and
// default namespaces.
func Start(ctx context.Context, cfg Config) (*Containerd, error) {
	if cfg.Subnet == "" {
		cfg.Subnet = "10.244.0.0/24"
	}
	for _, d := range []string{cfg.Root, cfg.State, filepath.Dir(cfg.Socket), filepath.Dir(cfg.ConfigFile), cfg.CNIConfDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	toml := fmt.Sprintf(configTOML, cfg.Root, cfg.State, cfg.Socket, filepath.Join(cfg.Root, "opt"), PauseImage, cfg.CNIConfDir)
	if err := os.WriteFile(cfg.ConfigFile, []byte(toml), 0o644); err != nil {
		return nil, err
	}
	cl := fmt.Sprintf(conflist, cfg.Subnet)
	if cfg.BridgeOnly {
		cl = fmt.Sprintf(bridgeOnly, cfg.Subnet)
	}
	if err := os.WriteFile(filepath.Join(cfg.CNIConfDir, "10-nodesim.conflist"), []byte(cl), 0o644); err != nil {
		return nil, err
	}
	_ = os.Remove(cfg.Socket)
	c := &Containerd{cfg: cfg, done: make(chan struct{})}
	c.cmd = exec.Command("containerd", "--config", cfg.ConfigFile)
	c.cmd.Stdout, c.cmd.Stderr = cfg.Log, cfg.Log
	// Its own process group, so a test's signals to containerd reach only it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	if err := c.waitReady(ctx, 20*time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	both := []string{"k8s.io", "default"}
	for _, img := range []struct {
		ref      string
		ep, argv []string
		ns       []string
	}{
		{PauseImage, []string{"/bin/sh", "-c", TermLoop}, nil, both},
		{BusyboxImage, nil, []string{"sh"}, both},
		{ToolsImage, nil, []string{"sh", "-c", TermLoop}, []string{"k8s.io"}},
	} {
		tarball, err := ociImage(img.ref, img.ep, img.argv)
		if err != nil {
			c.Stop()
			return nil, err
		}
		for _, ns := range img.ns {
			if _, err := c.Ctr(ctx, tarball, ns, "images", "import", "-"); err != nil {
				c.Stop()
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *Containerd) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	// Dial only once the socket exists: gRPC's reconnect backoff would add
	// a second otherwise.
	for {
		if _, err := os.Stat(c.cfg.Socket); err == nil {
			break
		}
		select {
		case <-c.done:
			return errors.New("containerd exited before it listened; see its log")
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd socket %s did not appear within %v", c.cfg.Socket, timeout)
		}
	}
	cc, err := grpc.NewClient("unix://"+c.cfg.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	c.cc, c.RS = cc, rt.NewRuntimeServiceClient(cc)
	for {
		vctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.RS.Status(vctx, &rt.StatusRequest{})
		cancel()
		if err == nil && ready(st) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd CRI not ready within %v: %v %v", timeout, err, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ready(st *rt.StatusResponse) bool {
	n := 0
	for _, c := range st.GetStatus().GetConditions() {
		if c.GetStatus() && (c.GetType() == rt.RuntimeReady || c.GetType() == rt.NetworkReady) {
			n++
		}
	}
	return n == 2
}

// Ctr runs ctr against this containerd in namespace ns.
func (c *Containerd) Ctr(ctx context.Context, stdin []byte, ns string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"-a", c.cfg.Socket, "-n", ns}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr -n %s %v: %w: %s", ns, args, err, out)
	}
	return string(out), nil
}

// PID is containerd's process ID.
func (c *Containerd) PID() int { return c.cmd.Process.Pid }

// Kill SIGKILLs containerd, leaving its shims and containers running: the
// "runtime is down" case.
func (c *Containerd) Kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Stop stops containerd (SIGTERM, SIGKILL after 5 s) and closes the
// client. Shims and containers keep running, as on a real host.
func (c *Containerd) Stop() {
	if c.cc != nil {
		c.cc.Close()
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.Kill()
	}
}
