package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"github.com/vishvananda/netlink"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// dockerSocket is the host-side socket of the sandbox's dockerd; with the
// /var/run link the profile's /var/run/docker.sock names it too.
const dockerSocket = "/run/docker.sock"

// decoyLabel marks the Docker decoys, so that probeDocker finds exactly
// them; nodereset's selection ignores labels it does not know.
const decoyLabel = "nodesim.decoy"

// startDocker runs a real dockerd inside the sandbox with RKE1 system
// containers, dockershim-style pod containers and user decoys. dockerd's
// state lands under the root (/var/lib and /run are the root's own here);
// /etc and /opt, which dockerd and its managed containerd write, get a
// copy-on-write layer in the root's /run. No bridge and no iptables rules:
// the Docker containers run with network none or host, so this feature
// leaves the sandbox's links and firewall to the network feature.
func startDocker(b *builder, self []byte) (func(), error) {
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, fmt.Errorf("sandbox feature docker needs dockerd on PATH (apt-get install docker.io): %w", err)
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("sandbox feature docker needs busybox for its image (apt-get install busybox-static): %w", err)
	}
	work := b.path("/run/nodesim-docker")
	for _, d := range []string{"/etc", "/opt"} {
		if err := overlay(d, filepath.Join(work, filepath.Base(d))); err != nil {
			return nil, err
		}
	}
	if _, err := os.Lstat(b.path("/var/run")); os.IsNotExist(err) {
		b.link("/var/run", "../run")
	}
	if b.err != nil {
		return nil, b.err
	}
	log, err := os.Create(filepath.Join(work, "dockerd.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cgroup := fmt.Sprintf("nodesim-docker-%d", b.m.InitPID)
	// --bridge none makes dockerd delete an existing docker0 (the network
	// feature's decoy): name it instead, so dockerd adopts it unchanged.
	bridge := "none"
	if _, err := netlink.LinkByName("docker0"); err == nil {
		bridge = "docker0"
	}
	cmd := exec.Command(bin, "--data-root", "/var/lib/docker", "--exec-root", "/run/docker",
		"-H", "unix://"+dockerSocket, "--pidfile", "/run/docker.pid", "--storage-driver", "overlay2",
		"--bridge", bridge, "--iptables=false", "--ip-masq=false", "--cgroup-parent", cgroup,
		"--shutdown-timeout", "2", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	stop := func() { stopDocker(cmd, cgroup) }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := waitDocker(ctx, filepath.Join(b.root, dockerSocket))
	if err != nil {
		out, _ := os.ReadFile(log.Name())
		return stop, fmt.Errorf("dockerd: %w\n%s", err, out)
	}
	defer c.Close()
	if err := plantDocker(ctx, b, c, bb); err != nil {
		return stop, fmt.Errorf("plant docker containers: %w", err)
	}
	want, err := dockerDecoys(ctx, c)
	if err != nil {
		return stop, err
	}
	b.m.Decoys.States = append(b.m.Decoys.States, DecoyState{Name: "docker", Want: want})
	return stop, nil
}

// overlay puts a copy-on-write layer over dir, kept under work.
func overlay(dir, work string) error {
	up, wk := work+".upper", work+".work"
	for _, d := range []string{up, wk} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + dir + ",upperdir=" + up + ",workdir=" + wk
	if err := unix.Mount("overlay", dir, "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay %s for dockerd: %w", dir, err)
	}
	return nil
}

func waitDocker(ctx context.Context, sock string) (*client.Client, error) {
	c, err := client.New(client.WithHost("unix://" + sock))
	if err != nil {
		return nil, err
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			c.Close()
			return nil, fmt.Errorf("not answering on %s: %w", sock, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopDocker stops dockerd (which stops its containers), kills what is
// left in the sandbox's cgroup parent and removes those cgroups: on cgroup
// v1 without a cgroup namespace they are the real host's.
func stopDocker(cmd *exec.Cmd, cgroup string) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", cgroup))
	uni, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/unified", cgroup))
	dirs = append(dirs, uni...)
	// On a cgroup v2 host the hierarchy is /sys/fs/cgroup itself.
	if v2 := filepath.Join("/sys/fs/cgroup", cgroup); filepath.Clean(v2) != "/sys/fs/cgroup" {
		if _, err := os.Stat(filepath.Join(v2, "cgroup.procs")); err == nil {
			dirs = append(dirs, v2)
		}
	}
	for try := 0; try < 50; try++ {
		left := 0
		for _, d := range dirs {
			left += killTree(d)
		}
		reap() // init is PID 1: a zombie it does not reap keeps its cgroup
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range dirs {
		var all []string
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		// An emptied cgroup is released asynchronously: retry briefly.
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			for i := len(all) - 1; i >= 0; i-- {
				_ = os.Remove(all[i])
			}
			if _, err := os.Stat(d); os.IsNotExist(err) {
				break
			}
		}
	}
}

// killTree SIGKILLs every process in a cgroup tree and returns how many.
func killTree(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				n++
			}
		}
		return nil
	})
	return n
}

// busyboxLayer is a one-layer root filesystem with the host's static
// busybox: enough for `sh -c` loops, imported without a registry.
func busyboxLayer(bb string) (io.Reader, error) {
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "etc/", "proc/", "sys/", "dev/", "data/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, l := range []string{"sh", "sleep"} {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + l, Typeflag: tar.TypeSymlink, Linkname: "busybox"}); err != nil {
			return nil, err
		}
	}
	return &buf, tw.Close()
}

// dockerDecoys is probeDocker's text, taken through an open client.
func dockerDecoys(ctx context.Context, c *client.Client) (string, error) {
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", decoyLabel)})
	if err != nil {
		return "", fmt.Errorf("list docker decoys: %w", err)
	}
	vs, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", decoyLabel)})
	if err != nil {
		return "", fmt.Errorf("list docker decoy volumes: %w", err)
	}
	var lines []string
	for _, k := range cs.Items {
		var ms []string
		for _, m := range k.Mounts {
			ms = append(ms, m.Name+":"+m.Destination)
		}
		sort.Strings(ms)
		lines = append(lines, fmt.Sprintf("container %s image=%s state=%s mounts=%s",
			strings.Join(k.Names, ","), k.Image, k.State, strings.Join(ms, ",")))
	}
	for _, v := range vs.Items {
		lines = append(lines, "volume "+v.Name)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), nil
}

// probeDocker prints the Docker decoys' containers (name, image, state,
// volumes) and volumes; it runs inside the sandbox.
func probeDocker(m Manifest) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := waitDocker(ctx, filepath.Join(m.Root, dockerSocket))
	if err != nil {
		return "", err
	}
	defer c.Close()
	return dockerDecoys(ctx, c)
}
