package cli

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/nodereset/nodereset/internal/cluster/clustertest"
	"github.com/nodereset/nodereset/internal/rancher"
)

// One API server plays both parts here (the library's tests use two): the
// commands' wiring is what is tested.
func TestRancherCommands(t *testing.T) {
	srv := apiserver.Get(t)
	c := srv.Client(t)
	ctx := context.Background()
	kc := srv.Kubeconfig(t, clustertest.AdminToken)
	srv.FinalizeNamespaces(t)

	clustertest.Namespace(t, c, "cattle-impersonation-system")
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "cli-norman-role", Labels: map[string]string{rancher.CreatorLabel: rancher.CreatorNorman}}}
	cr, err := c.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("cleanup dry run", func(t *testing.T) {
		code, out, errs := runCLI(t, "rancher", "cleanup", "--dry-run", "--kubeconfig", kc)
		if code != ExitOK || !strings.Contains(out, "delete Namespace cattle-impersonation-system") || !strings.Contains(out, "delete ClusterRole cli-norman-role") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		got, err := c.RbacV1().ClusterRoles().Get(ctx, cr.Name, metav1.GetOptions{})
		if err != nil || got.ResourceVersion != cr.ResourceVersion {
			t.Errorf("dry run changed the role: %v", err)
		}
	})
	t.Run("cleanup", func(t *testing.T) {
		code, out, errs := runCLI(t, "rancher", "cleanup", "--kubeconfig", kc, "--namespace-timeout", "30s")
		if code != ExitOK || !strings.Contains(out, "done     Namespace cattle-impersonation-system:") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		if _, err := c.CoreV1().Namespaces().Get(ctx, "cattle-impersonation-system", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace: %v", err)
		}
	})
	t.Run("cleanup without permission", func(t *testing.T) {
		code, _, errs := runCLI(t, "rancher", "cleanup", "--kubeconfig", srv.Kubeconfig(t, clustertest.LimitedToken))
		if code != ExitError || !strings.Contains(errs, "may not") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})

	b, err := os.ReadFile("../rancher/testdata/local-crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv.Apply(t, b)
	srv.Apply(t, []byte(`apiVersion: management.cattle.io/v3
kind: Cluster
metadata: {name: c-cli01}
status: {apiEndpoint: "`+srv.URL+`"}
---
apiVersion: v1
kind: Namespace
metadata: {name: c-cli01}
---
apiVersion: management.cattle.io/v3
kind: Node
metadata: {name: m-gone1, namespace: c-cli01, finalizers: [user-node-remove_c-cli01]}
spec: {internalNodeSpec: {providerID: "fake://cli-gone-node"}}
status: {nodeName: cli-gone-node}
`))
	t.Run("orphans", func(t *testing.T) {
		code, out, errs := runCLI(t, "rancher", "orphans", "--kubeconfig", kc, "--rancher-kubeconfig", kc)
		if code != ExitResidue || !strings.Contains(out, "orphan     nodes.management.cattle.io c-cli01/m-gone1") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
	})
	t.Run("orphans --fix", func(t *testing.T) {
		code, out, errs := runCLI(t, "rancher", "orphans", "--kubeconfig", kc, "--rancher-kubeconfig", kc, "--cluster", "c-cli01", "--fix", "--finalizer-grace", "200ms")
		if !strings.Contains(out, "done     nodes.management.cattle.io c-cli01/m-gone1:") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := srv.Dynamic(t).Resource(rancher.NodeGVR).Namespace("c-cli01").Get(ctx, "m-gone1", metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Error("record still there")
		}
	})
	t.Run("orphans without --rancher-kubeconfig", func(t *testing.T) {
		code, _, errs := runCLI(t, "rancher", "orphans", "--kubeconfig", kc)
		if code != ExitError || !strings.Contains(errs, "--rancher-kubeconfig is required") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
}
