package critest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	rt "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod is a pod as the kubelet would hand it to the runtime.
type Pod struct {
	Namespace, Name, UID string
	HostNetwork          bool
	// Labels and Annotations are the pod's own; the kubelet's pod labels
	// are added.
	Labels, Annotations map[string]string
	Containers          []Container
	// LogRoot is the kubelet's /var/log/pods as the caller sees it.
	LogRoot string
	// CgroupParent is the kubepods cgroup; the pod gets <parent>/pod<uid>.
	CgroupParent string
}

// Container is one container of a pod; Args nil runs TermLoop, Image ""
// is BusyboxImage.
type Container struct {
	Name   string
	Args   []string
	Mounts []*rt.Mount
	Image  string
}

// RunningPod is what RunPod created.
type RunningPod struct {
	SandboxID    string
	ContainerIDs []string
}

// kubeletLabels are what the kubelet adds to every sandbox and container.
func kubeletLabels(p Pod) map[string]string {
	return map[string]string{
		"io.kubernetes.pod.name": p.Name, "io.kubernetes.pod.namespace": p.Namespace, "io.kubernetes.pod.uid": p.UID,
	}
}

// RunPod creates and starts a pod the way the kubelet's kuberuntime does:
// RunPodSandbox with the pod's labels and annotations, log directory
// <LogRoot>/<ns>_<name>_<uid>, the pod cgroup and namespace options, then
// CreateContainer and StartContainer for each container.
func (c *Containerd) RunPod(ctx context.Context, p Pod) (RunningPod, error) {
	labels := kubeletLabels(p)
	all := maps.Clone(p.Labels)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, labels)
	logDir := filepath.Join(p.LogRoot, p.Namespace+"_"+p.Name+"_"+p.UID)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return RunningPod{}, err
	}
	netMode := rt.NamespaceMode_POD
	if p.HostNetwork {
		netMode = rt.NamespaceMode_NODE
	}
	nsOpts := &rt.NamespaceOption{Network: netMode, Pid: rt.NamespaceMode_CONTAINER, Ipc: rt.NamespaceMode_POD}
	sb := &rt.PodSandboxConfig{
		Metadata:     &rt.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID},
		LogDirectory: logDir,
		Labels:       all,
		Annotations:  p.Annotations,
		Linux: &rt.LinuxPodSandboxConfig{
			CgroupParent:    p.CgroupParent + "/pod" + p.UID,
			SecurityContext: &rt.LinuxSandboxSecurityContext{NamespaceOptions: nsOpts},
		},
	}
	if !p.HostNetwork { // as the kubelet: a host-network pod has the node's UTS namespace
		sb.Hostname = p.Name
	}
	r, err := c.RS.RunPodSandbox(ctx, &rt.RunPodSandboxRequest{Config: sb})
	if err != nil {
		return RunningPod{}, fmt.Errorf("RunPodSandbox %s/%s: %w", p.Namespace, p.Name, err)
	}
	out := RunningPod{SandboxID: r.GetPodSandboxId()}
	for _, ct := range p.Containers {
		args := ct.Args
		if args == nil {
			args = []string{"sh", "-c", TermLoop}
		}
		cl := maps.Clone(labels)
		cl["io.kubernetes.container.name"] = ct.Name
		if err := os.MkdirAll(filepath.Join(logDir, ct.Name), 0o755); err != nil {
			return out, err
		}
		cc, err := c.RS.CreateContainer(ctx, &rt.CreateContainerRequest{PodSandboxId: out.SandboxID, SandboxConfig: sb,
			Config: &rt.ContainerConfig{
				Metadata: &rt.ContainerMetadata{Name: ct.Name},
				Image:    &rt.ImageSpec{Image: cmp.Or(ct.Image, BusyboxImage)},
				Command:  args[:1], Args: args[1:],
				LogPath: ct.Name + "/0.log",
				Labels:  cl,
				Annotations: map[string]string{"io.kubernetes.container.restartCount": "0",
					"io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
				Mounts: ct.Mounts,
				Linux:  &rt.LinuxContainerConfig{SecurityContext: &rt.LinuxContainerSecurityContext{NamespaceOptions: nsOpts}},
			}})
		if err != nil {
			return out, fmt.Errorf("CreateContainer %s/%s/%s: %w", p.Namespace, p.Name, ct.Name, err)
		}
		if _, err := c.RS.StartContainer(ctx, &rt.StartContainerRequest{ContainerId: cc.GetContainerId()}); err != nil {
			return out, fmt.Errorf("StartContainer %s/%s/%s: %w", p.Namespace, p.Name, ct.Name, err)
		}
		out.ContainerIDs = append(out.ContainerIDs, cc.GetContainerId())
	}
	return out, nil
}

// RunPods runs pods with up to parallel at once.
func (c *Containerd) RunPods(ctx context.Context, pods []Pod, parallel int) ([]RunningPod, error) {
	out := make([]RunningPod, len(pods))
	errs := make([]error, len(pods))
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i := range pods {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = c.RunPod(ctx, pods[i])
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// RunDecoy starts a container outside CRI, in containerd namespace ns, as
// nerdctl or `ctr run` users do: it must survive a reset. cgroup places it
// (use a path under the test's own prefix: v1 cgroups are global here).
func (c *Containerd) RunDecoy(ctx context.Context, ns, id, cgroup string) error {
	_, err := c.Ctr(ctx, nil, ns, "run", "-d", "--cgroup", cgroup, BusyboxImage, id, "sh", "-c", TermLoop)
	return err
}

// RemoveCgroups removes the cgroup directories runc made under parent in
// every hierarchy, deepest first, after killing what is still in them.
// With the cgroupfs driver on cgroup v1 they are global to the machine, so
// a test must leave none behind.
func RemoveCgroups(parent string) error {
	rel := strings.Trim(filepath.Clean("/"+parent), "/")
	if rel == "" {
		return errors.New("remove cgroups: empty cgroup parent")
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", rel))
	// On a cgroup v2 host the hierarchy is /sys/fs/cgroup itself.
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", rel, "cgroup.procs")); err == nil {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", rel))
	}
	var errs []error
	for _, d := range dirs {
		var all []string
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			killCgroup(all[i])
			if err := rmdirRetry(all[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func killCgroup(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// rmdirRetry retries while killed processes are still leaving (EBUSY).
func rmdirRetry(dir string) error {
	var err error
	for i := 0; i < 100; i++ {
		if err = unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		killCgroup(dir)
		unix.Nanosleep(&unix.Timespec{Nsec: 20_000_000}, nil)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}
