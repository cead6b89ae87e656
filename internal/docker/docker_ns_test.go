package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// realDocker starts Debian's dockerd inside the test's namespaces with its
// socket at root/run/docker.sock. /run gets a tmpfs, /etc and /opt (its
// key file, its containerd's /opt/containerd) a copy-on-write layer; no
// bridge, no iptables. Its containers' cgroups (global on cgroup v1) are
// under a parent of this test's own and removed at cleanup.
func realDocker(t *testing.T, root string) (*client.Client, *exec.Cmd) {
	t.Helper()
	testns.Command(t, "dockerd")
	testns.Command(t, "busybox")
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=755"); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	for _, d := range []string{"/etc", "/opt"} {
		up, wk := filepath.Join(work, d+".upper"), filepath.Join(work, d+".work")
		_ = os.MkdirAll(up, 0o755)
		_ = os.MkdirAll(wk, 0o755)
		if err := unix.Mount("overlay", d, "overlay", 0, "lowerdir="+d+",upperdir="+up+",workdir="+wk); err != nil {
			t.Fatalf("overlay %s: %v", d, err)
		}
	}
	for _, d := range []string{"run", "var"} {
		_ = os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	_ = os.Symlink("../run", filepath.Join(root, "var/run"))
	sock := filepath.Join(root, "run/docker.sock")
	cgroup := fmt.Sprintf("nodereset-test-%d", time.Now().UnixNano())
	cmd := exec.Command("dockerd", "--data-root", filepath.Join(work, "data"), "--exec-root", "/run/docker",
		"-H", "unix://"+sock, "--pidfile", "/run/docker.pid", "--storage-driver", "overlay2",
		"--bridge", "none", "--iptables=false", "--ip-masq=false", "--cgroup-parent", cgroup, "--shutdown-timeout", "1")
	logf, _ := os.Create(filepath.Join(work, "dockerd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopDockerd(t, cmd, cgroup, work) })
	c, err := client.New(client.WithHost("unix://" + sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd not answering: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("dockerd ready in %v", time.Since(start).Round(time.Millisecond))
	return c, cmd
}

// stopDockerd stops dockerd, kills what it left running (a killed dockerd
// leaves its containers), unmounts their layers and removes the cgroups.
func stopDockerd(t *testing.T, cmd *exec.Cmd, cgroup, work string) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroup)
	for try := 0; try < 100; try++ {
		alive := 0
		for _, d := range dirs {
			procs, _ := filepath.Glob(d + "/*/cgroup.procs")
			for _, p := range append(procs, d+"/cgroup.procs") {
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					var pid int
					if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
						_ = syscall.Kill(pid, syscall.SIGKILL)
						alive++
					}
				}
			}
		}
		// The test is PID 1 of its namespace: the killed are its to reap,
		// and a zombie still holds its cgroup.
		for {
			if pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
		if alive == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(work))
	for i := len(ms) - 1; i >= 0; i-- {
		_ = unix.Unmount(ms[i].Mountpoint, unix.MNT_DETACH)
	}
	// Emptied cgroups are released asynchronously: rmdir can be EBUSY for
	// a moment.
	for _, d := range dirs {
		var err error
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			subs, _ := os.ReadDir(d)
			for _, s := range subs {
				if s.IsDir() {
					_ = os.Remove(filepath.Join(d, s.Name()))
				}
			}
			if err = os.Remove(d); err == nil || os.IsNotExist(err) {
				break
			}
		}
		if err != nil && !os.IsNotExist(err) {
			t.Errorf("remove test cgroup %s: %v", d, err)
		}
	}
}

// importImage imports a one-layer busybox image; extra makes its ID unique.
func importImage(t *testing.T, c *client.Client, ref, extra string) {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(body)
	}
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bin)
	add(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil)
	add(&tar.Header{Name: "bin/sleep", Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil)
	add(&tar.Header{Name: "id", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(extra))
	_ = tw.Close()
	r, err := c.ImageImport(context.Background(), client.ImageImportSource{Source: &buf, SourceName: "-"}, ref, client.ImageImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v", ref, err)
	}
	_, _ = io.Copy(io.Discard, r)
	r.Close()
}

func runContainer(t *testing.T, c *client.Client, name, image string, labels map[string]string, hc container.HostConfig, vols ...string) {
	t.Helper()
	cfg := &container.Config{Image: image, Labels: labels, Volumes: map[string]struct{}{},
		Cmd: []string{"/bin/sh", "-c", `trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done`}}
	for _, v := range vols {
		cfg.Volumes[v] = struct{}{}
	}
	if hc.NetworkMode == "" {
		hc.NetworkMode = "none"
	}
	ctx := context.Background()
	r, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: &hc})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := c.ContainerStart(ctx, r.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
}

// TestRealDocker: against a real dockerd, Discover finds exactly the
// kubelet's and RKE's containers (once, though two socket paths name the
// daemon), Apply removes them with their anonymous volumes and the images
// only they used, a re-run is a no-op, the user's container, its named
// volume and its image stay, and a daemon that stops answering is an error
// naming the socket.
func TestRealDocker(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net|testns.PID) {
		return
	}
	root := t.TempDir()
	c, dockerd := realDocker(t, root)
	importImage(t, c, "rancher/hyperkube:v1.20.15-rancher1", "k8s")
	if _, err := c.ImageTag(context.Background(), client.ImageTagOptions{Source: "rancher/hyperkube:v1.20.15-rancher1", Target: "rancher/mirrored-pause:3.6"}); err != nil {
		t.Fatal(err)
	}
	importImage(t, c, "user/app:1", "user")
	const uid = "7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8"
	pod := map[string]string{LabelPodName: "web", LabelPodNamespace: "default", LabelPodUID: uid, LabelDockerType: "podsandbox"}
	runContainer(t, c, "kube-apiserver", "rancher/hyperkube:v1.20.15-rancher1", map[string]string{LabelRKEName: "kube-apiserver"},
		container.HostConfig{NetworkMode: "host", RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways}}, "/data")
	runContainer(t, c, "k8s_POD_web_default_"+uid+"_0", "rancher/mirrored-pause:3.6", pod, container.HostConfig{})
	runContainer(t, c, "k8s_app_web_default_"+uid+"_0", "rancher/hyperkube:v1.20.15-rancher1", nil,
		container.HostConfig{NetworkMode: container.NetworkMode("container:k8s_POD_web_default_" + uid + "_0")})
	runContainer(t, c, "webapp", "user/app:1", nil, container.HostConfig{Binds: []string{"webdata:/data"}})
	runContainer(t, c, "etcd", "user/app:1", nil, container.HostConfig{}) // RKE's name, the user's image

	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	env := &engine.Env{Host: h, Log: quiet()}
	opts := Options{Sockets: []string{"/var/run/docker.sock", "/run/docker.sock", "/run/absent.sock"}, Images: true, Grace: time.Second}
	ctx := context.Background()
	k, ik := New(opts), NewImages(opts)
	items, err := k.Discover(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range items {
		names = append(names, it.Detail.(Detail).Name)
	}
	want := "k8s_app_web_default_" + uid + "_0 k8s_POD_web_default_" + uid + "_0 kube-apiserver"
	if strings.Join(names, " ") != want {
		t.Fatalf("discovered %v, want %s", names, want)
	}
	if d := items[2].Detail.(Detail); len(d.Volumes) != 1 || d.Socket != "/var/run/docker.sock" {
		t.Errorf("apiserver detail %+v: want its anonymous volume, the first socket name", d)
	}
	imgs, err := ik.Discover(ctx, env)
	if err != nil || len(imgs) != 1 || imgs[0].Target != "docker:rancher/hyperkube:v1.20.15-rancher1" {
		t.Fatalf("images: %v %+v", err, imgs)
	}

	start := time.Now()
	for _, kind := range []struct {
		k     engine.Kind
		items []plan.Item
	}{{k, items}, {ik, imgs}} {
		rec := newRec(t)
		kind.k.Apply(ctx, env, kind.items, rec)
		for _, it := range kind.items {
			if err := rec.done[it.Target]; err != nil {
				t.Errorf("%s: %v", it.Target, err)
			}
		}
	}
	t.Logf("removed %d containers and %d image in %v", len(items), len(imgs), time.Since(start).Round(time.Millisecond))

	left, err := c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, x := range left.Items {
		kept = append(kept, name(x)+"="+string(x.State))
	}
	if got := strings.Join(kept, " "); !(strings.Contains(got, "webapp=running") && strings.Contains(got, "etcd=running") && len(kept) == 2) {
		t.Errorf("left %s, want webapp and etcd running", got)
	}
	vols, _ := c.VolumeList(ctx, client.VolumeListOptions{})
	if len(vols.Items) != 1 || vols.Items[0].Name != "webdata" {
		t.Errorf("volumes left %+v, want only webdata", vols.Items)
	}
	il, _ := c.ImageList(ctx, client.ImageListOptions{})
	if len(il.Items) != 1 || len(il.Items[0].RepoTags) != 1 || il.Items[0].RepoTags[0] != "user/app:1" {
		t.Errorf("images left %+v, want only user/app:1", il.Items)
	}

	// A re-run after a crash: everything is already gone, and done.
	rec := newRec(t)
	k.Apply(ctx, env, items, rec)
	for _, it := range items {
		if err := rec.done[it.Target]; err != nil {
			t.Errorf("re-run %s: %v", it.Target, err)
		}
	}
	if again, err := k.Discover(ctx, env); err != nil || len(again) != 0 {
		t.Errorf("after apply: %v %v", again, err)
	}

	// dockerd killed: its socket file stays and answers nothing.
	_ = dockerd.Process.Kill()
	_, _ = dockerd.Process.Wait()
	_, err = k.Discover(ctx, env)
	var se *SocketError
	if !errors.As(err, &se) || se.Socket != "/var/run/docker.sock" || !strings.Contains(err.Error(), "start dockerd") {
		t.Errorf("discover with dockerd down: %v", err)
	}
}
