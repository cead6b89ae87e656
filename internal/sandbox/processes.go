package sandbox

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nodereset/nodereset/pkg/plan"
)

// Environment of a fake component process (see RunFake).
const (
	EnvRole       = "NODESIM_ROLE"
	EnvListen     = "NODESIM_LISTEN"
	EnvIgnoreTerm = "NODESIM_IGNORE_TERM"
	envReadyFD    = "NODESIM_READY_FD"
)

// procSpec is one process started on the node. Its executable is a copy of
// nodesim at exe (host-side), so /proc/PID/exe names a distinct inode there.
type procSpec struct {
	exe        string
	argv       []string
	ports      []int
	ignoreTerm bool
	decoy      bool
}

func procSpecs() []procSpec {
	return []procSpec{
		{exe: "/usr/bin/kubelet", ports: []int{10250, 10248}, argv: []string{"/usr/bin/kubelet",
			"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
			"--config=/var/lib/kubelet/config.yaml", "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"}},
		{exe: "/usr/bin/kube-apiserver", ports: []int{6443}, argv: []string{"kube-apiserver",
			"--advertise-address=10.0.0.10", "--secure-port=6443", "--etcd-servers=https://127.0.0.1:2379"}},
		{exe: "/usr/bin/kube-controller-manager", ports: []int{10257}, argv: []string{"kube-controller-manager",
			"--kubeconfig=/etc/kubernetes/controller-manager.conf"}},
		{exe: "/usr/bin/kube-scheduler", ports: []int{10259}, argv: []string{"kube-scheduler",
			"--kubeconfig=/etc/kubernetes/scheduler.conf"}},
		// etcd ignores SIGTERM, so a reset must escalate.
		{exe: "/usr/local/bin/etcd", ports: []int{2379, 2380}, ignoreTerm: true, argv: []string{"etcd",
			"--data-dir=/var/lib/etcd", "--listen-client-urls=https://127.0.0.1:2379", "--listen-peer-urls=https://10.0.0.10:2380"}},
		// kube-proxy at an unusual path: only its name and exact port give it away.
		{exe: "/opt/kube/bin/kube-proxy", ports: []int{10256}, argv: []string{"kube-proxy",
			"--config=/var/lib/kube-proxy/config.conf"}},

		{decoy: true, exe: "/opt/tools/kube-watch", argv: []string{"kube-watch",
			"--kubeconfig", "/etc/kubernetes/admin.conf", "--watch", "kube-apiserver"}},
		{decoy: true, exe: "/usr/sbin/webd", ports: []int{80}, argv: []string{"webd", "--port=80"}},
		{decoy: true, exe: "/usr/sbin/webd-alt", ports: []int{8080}, argv: []string{"webd-alt", "--port=8080"}},
		{decoy: true, exe: "/home/user/bin/kubelet", ports: []int{18250}, argv: []string{"/home/user/bin/kubelet",
			"--port=18250", "--config=/home/user/kubelet-dev.yaml"}},
	}
}

// startProcesses copies nodesim to every spec's exe, starts them with cwd
// root, waits until each has its listeners open, and records them in the
// manifest. It returns what it started, also on error, so the caller can
// kill them.
func startProcesses(b *builder, self []byte, specs []procSpec) ([]*os.Process, error) {
	for _, s := range specs {
		b.dir(filepath.Dir(s.exe))
		if b.err == nil {
			b.fail(os.WriteFile(b.path(s.exe), self, 0o755))
		}
	}
	if b.err != nil {
		return nil, b.err
	}
	var started []*os.Process
	ready := make([]*os.File, len(specs))
	for i, s := range specs {
		p, r, err := startFake(b.root, s)
		if err != nil {
			return started, err
		}
		started, ready[i] = append(started, p), r
	}
	// All fakes start in parallel; wait for each one's readiness byte.
	deadline := time.Now().Add(10 * time.Second)
	for i, r := range ready {
		_ = r.SetReadDeadline(deadline)
		var one [1]byte
		_, err := io.ReadFull(r, one[:])
		r.Close()
		if err != nil {
			return started, fmt.Errorf("fake %s did not get ready (its listeners?): %w", specs[i].exe, err)
		}
	}
	for i, s := range specs {
		pid := started[i].Pid
		if !s.decoy {
			b.expect(plan.KindProcess, strconv.Itoa(pid))
			continue
		}
		st, err := procStart("/proc", pid)
		if err != nil {
			return started, fmt.Errorf("decoy %s (pid %d): %w", s.exe, pid, err)
		}
		b.m.Decoys.Processes = append(b.m.Decoys.Processes, DecoyProcess{PID: pid, Start: st, Exe: s.exe})
		for _, port := range s.ports {
			b.m.Decoys.Listeners = append(b.m.Decoys.Listeners, DecoyListener{Port: port})
		}
	}
	return started, nil
}

func startFake(root string, s procSpec) (*os.Process, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	ports := make([]string, len(s.ports))
	for i, p := range s.ports {
		ports[i] = strconv.Itoa(p)
	}
	cmd := &exec.Cmd{
		Path: filepath.Join(root, s.exe),
		Args: s.argv,
		Dir:  root,
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			EnvRole + "=" + filepath.Base(s.exe), EnvListen + "=" + strings.Join(ports, ","), envReadyFD + "=3"},
		ExtraFiles: []*os.File{w},
		Stderr:     os.Stderr, // init.log, for a fake that fails to start
	}
	if s.ignoreTerm {
		cmd.Env = append(cmd.Env, EnvIgnoreTerm+"=1")
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("start fake %s: %w", s.exe, err)
	}
	return cmd.Process, r, nil
}
