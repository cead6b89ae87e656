package cli

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodereset/nodereset/internal/cluster/clustertest"
)

// apiserver is started by the first test that needs it (never in the
// namespaced re-runs of TestCommands) and stopped by TestMain.
var apiserver clustertest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	apiserver.Stop()
	rancherLocal.Stop()
	os.Exit(code)
}

// runCluster runs drain/remove as Main would, on a root of their own (the
// commands are wired into the real root in cli.go).

// versions are the resourceVersions of the node, its Lease and its pods.
func versions(t *testing.T, c kubernetes.Interface, node, ns string) map[string]string {
	t.Helper()
	ctx := context.Background()
	v := map[string]string{}
	n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v["node"] = n.ResourceVersion
	l, err := c.CoordinationV1().Leases("kube-node-lease").Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v["lease"] = l.ResourceVersion
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		v["pod/"+p.Name] = p.ResourceVersion
	}
	return v
}

func TestClusterCommands(t *testing.T) {
	srv := apiserver.Get(t)
	c := srv.Client(t)
	ns, node := "cli", "cli-node"
	clustertest.Namespace(t, c, ns)
	clustertest.CreateNode(t, c, clustertest.NodeSpec{Name: node, NotReadyFor: time.Hour})
	lbl := map[string]string{"app": "web"}
	rs := clustertest.ReplicaSet(t, c, ns, "web", 2, lbl, "")
	clustertest.CreatePods(t, c,
		clustertest.Owned(clustertest.PodSpec(ns, "web-0", node, lbl), "ReplicaSet", rs.Name, string(rs.UID)),
		clustertest.Owned(clustertest.PodSpec(ns, "web-1", node, lbl), "ReplicaSet", rs.Name, string(rs.UID)),
		clustertest.PodSpec(ns, "bare", node, nil))
	admin := srv.Kubeconfig(t, clustertest.AdminToken)
	before := versions(t, c, node, ns)
	unchanged := func(t *testing.T) {
		t.Helper()
		after := versions(t, c, node, ns)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s changed: resourceVersion %s -> %s", k, v, after[k])
			}
		}
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"dry-run shows the plan", []string{"remove", node, "--kubeconfig", admin, "--dry-run", "--force"}, ExitOK, "evict   cli/web-0"},
		{"dry-run json", []string{"drain", node, "--kubeconfig", admin, "--dry-run", "-o", "json"}, ExitOK, `"blocked"`},
		{"dry-run=client as kubectl", []string{"drain", node, "--kubeconfig", admin, "--dry-run=client"}, ExitOK, "BLOCKED cli/bare"},
		{"dry-run=server runs as client", []string{"drain", node, "--kubeconfig", admin, "--dry-run=server"}, ExitOK, "is run as --dry-run=client"},
		{"dry-run=none applies", []string{"drain", node, "--kubeconfig", admin, "--dry-run=none"}, ExitError, "evict only with --force"},
		{"bad --dry-run", []string{"drain", node, "--kubeconfig", admin, "--dry-run=yes"}, ExitError, "use none, client or server"},
		{"unmanaged pod needs --force", []string{"drain", node, "--kubeconfig", admin}, ExitError, "cli/bare: no controller manages it: evict only with --force"},
		{"unknown node", []string{"remove", "no-such-node", "--kubeconfig", admin}, ExitError, `node "no-such-node" not found`},
		{"unreachable API server", []string{"remove", node, "--server", "https://127.0.0.1:" + closedPort(t), "--insecure-skip-tls-verify", "--token", "x"}, ExitError, "cannot reach the API server"},
		{"RBAC-limited user", []string{"remove", node, "--kubeconfig", srv.Kubeconfig(t, clustertest.LimitedToken)}, ExitError, "may not get leases.coordination.k8s.io, get daemonsets.apps"},
		{"bad --on-timeout", []string{"drain", node, "--kubeconfig", admin, "--on-timeout", "wait"}, ExitError, "use fail, force-delete or skip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d (want %d), want %q in:\n%s\n%s", code, tc.code, tc.want, out, errOut)
			}
			unchanged(t)
		})
	}
	t.Run("remove an unreachable node", func(t *testing.T) {
		code, out, errOut := runCLI(t, "remove", node, "--kubeconfig", admin, "--force", "--unreachable-after", "1m", "--volume-detach-timeout", "5s")
		if code != ExitOK || !strings.Contains(out, "done     delete node") || !strings.Contains(out, "nodereset reset") {
			t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
		}
	})
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}
