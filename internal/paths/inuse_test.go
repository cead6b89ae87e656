package paths

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/internal/cri"
	"github.com/nodereset/nodereset/internal/mounts"
	"github.com/nodereset/nodereset/pkg/plan"
)

// TestInUseErrorAdvice: only a process that is not a container runtime is
// to be stopped; for a runtime the advice is its socket for --cri-socket.
func TestInUseErrorAdvice(t *testing.T) {
	etcd := mounts.Holder{PID: 7, Comm: "etcd", Uses: []string{"cwd"}}
	ctrd := mounts.Holder{PID: 48, Comm: "containerd", Uses: []string{"fd 37"}}
	tests := []struct {
		name     string
		err      InUseError
		want     []string
		wantNot  []string
		wantStop bool
	}{
		{name: "process", err: InUseError{Path: "/var/lib/etcd", Holders: []mounts.Holder{etcd}},
			want: []string{"/var/lib/etcd is in use by pid 7 (etcd) cwd", "stop it and run reset again"}},
		{name: "runtime with its socket", err: InUseError{Path: "/var/log/pods", Holders: []mounts.Holder{ctrd},
			Runtimes: []cri.RuntimeProcess{{PID: 48, Name: "containerd", Socket: "/run/containerd/containerd.sock"}}},
			want:    []string{"pid 48 (containerd) fd 37", "container runtime containerd (pid 48) still holds Kubernetes pods' files", "do not stop it", "--cri-socket unix:///run/containerd/containerd.sock", "run reset again"},
			wantNot: []string{"stop it and"}},
		{name: "runtime, socket unknown, and another process", err: InUseError{Path: "/var/log/pods", Holders: []mounts.Holder{ctrd, etcd},
			Runtimes: []cri.RuntimeProcess{{PID: 48, Name: "containerd"}}},
			want:    []string{"--cri-socket naming its CRI socket", "after stopping the other processes"},
			wantNot: []string{"stop it and"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q\ndoes not say %q", msg, w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(msg, w) {
					t.Errorf("%q\nsays %q", msg, w)
				}
			}
		})
	}
}

// helperEnv makes the test binary act as a container runtime: listen on a
// CRI socket and hold a file open (RUNTIME_SOCKET, RUNTIME_FILE).
const helperEnv = "NODERESET_PATHS_RUNTIME_HELPER"

func TestRuntimeHelper(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process for TestApplyPathHeldByRuntime")
	}
	l, err := net.Listen("unix", os.Getenv("RUNTIME_SOCKET"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := os.Open(os.Getenv("RUNTIME_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.Stdout.WriteString("ready\n")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the test closes stdin
}

// TestApplyPathHeldByRuntime: a containerd (by its comm, as K3s's
// multi-call binary runs it) holding a pod log keeps /var/log/pods whole,
// and the error names its socket, host-side, for --cri-socket instead of
// asking to stop it.
func TestApplyPathHeldByRuntime(t *testing.T) {
	env := newEnv(t, map[string]string{"/var/log/pods/ns_web_1/app/0.log": "log", "/run/containerd/": ""})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "containerd")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestRuntimeHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"=1",
		"RUNTIME_SOCKET="+env.Host.Path("/run/containerd/containerd.sock"),
		"RUNTIME_FILE="+env.Host.Path("/var/log/pods/ns_web_1/app/0.log"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper: %q %v", line, err)
	}

	k := New(Options{Specs: []Spec{{Path: "/var/log/pods", Action: plan.ActionEmpty}}})
	it := plan.Item{Kind: plan.KindPath, Target: "/var/log/pods", Action: plan.ActionEmpty}
	rec := &recorder{}
	k.Apply(context.Background(), env, []plan.Item{it}, rec)
	err = rec.done[it.Key()]
	var ie *InUseError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v, want an *InUseError", err)
	}
	if len(ie.Runtimes) != 1 || ie.Runtimes[0].PID != cmd.Process.Pid || ie.Runtimes[0].Name != "containerd" ||
		ie.Runtimes[0].Socket != "/run/containerd/containerd.sock" {
		t.Errorf("runtimes %+v, want containerd pid %d on /run/containerd/containerd.sock", ie.Runtimes, cmd.Process.Pid)
	}
	if msg := err.Error(); !strings.Contains(msg, "--cri-socket unix:///run/containerd/containerd.sock") || strings.Contains(msg, "stop it and") {
		t.Errorf("advice: %s", msg)
	}
	if _, err := os.Stat(env.Host.Path("/var/log/pods/ns_web_1/app/0.log")); err != nil {
		t.Errorf("a path in use was changed: %v", err)
	}
}
