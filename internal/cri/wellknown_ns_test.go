package cri

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/nodereset/nodereset/internal/testns"
)

// TestWellKnownSocketProbed runs against a real containerd on the system
// socket while the profile names only K3s's (a K3s or RKE2 kubelet with
// --container-runtime-endpoint on the system containerd): its kubelet pods
// are planned and removed all the same, a well-known socket nobody answers
// on is a plan warning and no error (an error once --cri-socket names it),
// and one that answers without CRI (Docker's containerd) is neither;
// --all-containers does not reach a socket only found there.
func TestWellKnownSocketProbed(t *testing.T) {
	prereqs(t)
	if !testns.Enter(t, testns.Mount|testns.Net|testns.PID) {
		return
	}
	n := startNode(t)
	plantPods(t, n)
	// A CRI-O that died and left its socket: connecting is refused.
	if err := os.MkdirAll("/run/crio", 0o755); err != nil {
		t.Fatal(err)
	}
	dead, err := net.Listen("unix", "/run/crio/crio.sock")
	if err != nil {
		t.Fatal(err)
	}
	dead.(*net.UnixListener).SetUnlinkOnClose(false)
	dead.Close()
	// A gRPC server without the CRI services.
	other, err := net.Listen("unix", "/run/cri-dockerd.sock")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	go func() { _ = srv.Serve(other) }()
	defer srv.Stop()

	env := testEnv(t)
	ctx := context.Background()
	opts := Options{Sockets: []string{"/run/k3s/containerd/containerd.sock"}, Grace: time.Second, DialTimeout: 500 * time.Millisecond}
	pods, ctrs := New(opts)
	ps, err := pods.Discover(ctx, env)
	if err != nil {
		t.Fatalf("a well-known socket that does not answer failed the plan: %v", err)
	}
	if got, want := targets(ps), "default/web-7d9f-x2x kube-system/kube-proxy-q8x kube-system/etcd-node1"; got != want {
		t.Fatalf("pods on the system containerd %q, want %q", got, want)
	}
	for _, it := range ps {
		if !strings.Contains(it.Reason, "unix://"+testSocket) {
			t.Errorf("%s: reason %q does not name the socket", it.Target, it.Reason)
		}
	}
	w := pods.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "unix:///run/crio/crio.sock") || !strings.Contains(w[0], "--cri-socket") {
		t.Errorf("warnings %q, want one about unix:///run/crio/crio.sock", w)
	}
	cs, err := ctrs.Discover(ctx, env)
	if err != nil || len(cs) != 4 {
		t.Fatalf("containers %v %s, want the 4 kubelet containers", err, targets(cs))
	}

	// --all-containers reaches the runtimes that were named, not one
	// found at a well-known path: the foreign pod stays out.
	allOpts := opts
	allOpts.All = true
	allPods, _ := New(allOpts)
	if got, err := allPods.Discover(ctx, env); err != nil || targets(got) != targets(ps) {
		t.Errorf("--all-containers on a guessed socket planned %s (%v), want only the kubelet's %s", targets(got), err, targets(ps))
	}

	rec := newRecorder(t)
	pods.Apply(ctx, env, ps, rec)
	ctrs.Apply(ctx, env, cs, rec)
	rec.check(append(ps, cs...))
	if again, err := pods.Discover(ctx, env); err != nil || len(again) != 0 {
		t.Errorf("after apply: %v %s", err, targets(again))
	}

	opts.Explicit = []string{"unix:///run/crio/crio.sock"}
	named, _ := New(opts)
	if _, err := named.Discover(ctx, env); err == nil || !strings.Contains(err.Error(), "crio.sock") {
		t.Errorf("--cri-socket naming a runtime that does not answer: %v, want an error", err)
	}
	if w := named.Warnings(); len(w) != 0 {
		t.Errorf("a named socket gave warnings %q instead of an error", w)
	}
}
