package rancher

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/nodereset/nodereset/internal/cluster"
	"github.com/nodereset/nodereset/internal/cluster/clustertest"
)

// Two real API servers: the downstream cluster and Rancher's local cluster.
var (
	downstreamServer clustertest.Shared
	localServer      clustertest.Shared
	setup            fixtures
)

func TestMain(m *testing.M) {
	code := m.Run()
	downstreamServer.Stop()
	localServer.Stop()
	os.Exit(code)
}

// fixtures installs the CRDs and the Rancher clusters once per binary.
type fixtures struct {
	once sync.Once
	ds   *clustertest.Server
	ls   *clustertest.Server
}

func (f *fixtures) get(t *testing.T) (*clustertest.Server, *clustertest.Server) {
	t.Helper()
	ds, ls := downstreamServer.Get(t), localServer.Get(t)
	f.once.Do(func() {
		ls.Apply(t, read(t, "local-crds.yaml"))
		ls.Apply(t, []byte(strings.ReplaceAll(string(read(t, "local.yaml")), "${DOWNSTREAM}", ds.URL)))
		f.ds, f.ls = ds, ls
	})
	if f.ds == nil {
		t.Fatal("fixtures failed in an earlier test")
	}
	return ds, ls
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func downstream(t *testing.T, s *clustertest.Server, token string) Downstream {
	t.Helper()
	c, err := kubernetes.NewForConfig(s.Config(token))
	if err != nil {
		t.Fatal(err)
	}
	d, err := dynamic.NewForConfig(s.Config(token))
	if err != nil {
		t.Fatal(err)
	}
	return Downstream{Client: c, Dynamic: d, Server: s.URL}
}

func management(t *testing.T, s *clustertest.Server) Management {
	return Management{Dynamic: s.Dynamic(t), Server: s.URL}
}

// snapshot is the resourceVersion of every namespace, RBAC object, webhook
// configuration and CRD: what a dry run must not change.
func snapshot(t *testing.T, d Downstream) map[string]string {
	t.Helper()
	rbac := func(r string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: r}
	}
	adm := func(r string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: r}
	}
	v := map[string]string{}
	for _, r := range []struct {
		prefix string
		gvr    schema.GroupVersionResource
	}{
		{"ns/", schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}},
		{"role/", rbac("roles")}, {"clusterrole/", rbac("clusterroles")},
		{"rolebinding/", rbac("rolebindings")}, {"clusterrolebinding/", rbac("clusterrolebindings")},
		{"vwc/", adm("validatingwebhookconfigurations")}, {"mwc/", adm("mutatingwebhookconfigurations")},
		{"crd/", crdGVR},
	} {
		l, err := d.Dynamic.Resource(r.gvr).List(context.Background(), metav1.ListOptions{})
		must(t, err)
		for _, x := range l.Items {
			name := x.GetName()
			if ns := x.GetNamespace(); ns != "" {
				name = ns + "/" + name
			}
			v[r.prefix+name] = x.GetResourceVersion()
		}
	}
	return v
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCleanupImportedCluster(t *testing.T) {
	ds, _ := setup.get(t)
	ds.Apply(t, read(t, "downstream-crds.yaml"))
	ds.Apply(t, read(t, "downstream.yaml"))
	ds.FinalizeNamespaces(t)
	d := downstream(t, ds, clustertest.AdminToken)
	ctx := context.Background()
	o := DefaultCleanupOptions()
	o.CRDs, o.NamespaceTimeout, o.PollInterval = true, 90*time.Second, 100*time.Millisecond

	before := snapshot(t, d)
	p, err := PlanCleanup(ctx, d, o)
	must(t, err)
	var got []string
	for _, it := range p.Items {
		got = append(got, it.Action+" "+it.Object())
	}
	want := []string{
		"delete ValidatingWebhookConfiguration rancher.cattle.io",
		"delete MutatingWebhookConfiguration rancher.cattle.io",
		"strip Namespace shop",
		"delete Role shop/p-abc12-namespaces-edit",
		"delete ClusterRole cluster-owner",
		"delete RoleBinding shop/u-x7k2p-member",
		"delete ClusterRoleBinding globaladmin-u-x7k2p",
		"delete Namespace cattle-fleet-system",
		"delete Namespace cattle-impersonation-system",
		"delete Namespace cattle-project-p-abc12-monitoring",
		"delete Namespace cattle-system",
		"delete CustomResourceDefinition apps.catalog.cattle.io",
		"delete CustomResourceDefinition clusterauthtokens.cattle.io",
		"delete CustomResourceDefinition clusterrepos.catalog.cattle.io",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, it := range p.Items {
		if it.Name == "shop" {
			wantRm := []string{"finalizer controller.cattle.io/namespace-auth", "label field.cattle.io/projectId",
				"annotation cattle.io/status", "annotation field.cattle.io/projectId", "annotation lifecycle.cattle.io/create.namespace-auth"}
			if !slices.Equal(it.Remove, wantRm) {
				t.Errorf("shop: remove %v, want %v", it.Remove, wantRm)
			}
		}
	}
	// The plan is the dry run: nothing changed.
	if after := snapshot(t, d); !maps.Equal(before, after) {
		t.Fatalf("planning changed resourceVersions:\nbefore %v\nafter  %v", before, after)
	}

	start := time.Now()
	rep, err := ApplyCleanup(ctx, d, p)
	if err != nil || rep.Failed() {
		t.Fatalf("apply: %v; %+v", err, rep)
	}
	t.Logf("cleanup of %d items took %s", len(p.Items), time.Since(start).Round(time.Millisecond))
	after := snapshot(t, d)
	for k := range before {
		_, still := after[k]
		rancher := slices.ContainsFunc(p.Items, func(it CleanupItem) bool { return it.Action == ActionDelete && strings.HasSuffix(k, "/"+it.Name) })
		switch {
		case rancher && still:
			t.Errorf("%s still there", k)
		case !rancher && !still && !strings.HasPrefix(k, "role/cattle-") && !strings.HasPrefix(k, "rolebinding/cattle-"):
			t.Errorf("%s was deleted", k)
		case !rancher && still && k != "ns/shop" && before[k] != after[k]:
			t.Errorf("%s changed", k)
		}
	}
	shop, err := d.Client.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	must(t, err)
	if len(shop.Finalizers) != 0 || len(shop.Labels) != 3 || shop.Labels["example.com/cattle.io-ish"] != "keep" || shop.Labels["app"] != "shop" {
		t.Errorf("shop after: finalizers %v labels %v", shop.Finalizers, shop.Labels)
	}
	if len(shop.Annotations) != 1 || shop.Annotations["management.example.com/owner"] != "team-a" {
		t.Errorf("shop annotations after: %v", shop.Annotations)
	}
	if _, err := d.Client.CoreV1().ConfigMaps("shop").Get(ctx, "shop-config", metav1.GetOptions{}); err != nil {
		t.Errorf("workload config in shop: %v", err)
	}

	// Run again: nothing left to do (idempotent), and no error.
	p2, err := PlanCleanup(ctx, d, o)
	must(t, err)
	if len(p2.Items) != 0 {
		t.Errorf("second plan: %+v", p2.Items)
	}
	// Apply of the old plan again: everything is already gone.
	rep, err = ApplyCleanup(ctx, d, p)
	if err != nil {
		t.Errorf("re-apply: %v", err)
	}
	for _, r := range rep.Results {
		if r.Status != StatusDone || (r.Detail != "already gone" && !strings.HasPrefix(r.Detail, "removed")) {
			t.Errorf("re-apply %s: %s %s", r.Object, r.Status, r.Detail+r.Error)
		}
	}
}

// Rancher's local cluster runs the server: refused, nothing changed.
func TestCleanupRefusesRancherServer(t *testing.T) {
	_, ls := setup.get(t)
	c := ls.Client(t)
	ctx := context.Background()
	clustertest.Namespace(t, c, "cattle-system")
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "rancher", Namespace: "cattle-system"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443}}}}
	_, err := c.CoreV1().Services("cattle-system").Create(ctx, svc, metav1.CreateOptions{})
	must(t, err)
	d := downstream(t, ls, clustertest.AdminToken)
	before := snapshot(t, d)
	_, err = PlanCleanup(ctx, d, DefaultCleanupOptions())
	var re *RancherServerError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "Service cattle-system/rancher") {
		t.Fatalf("err = %v, want RancherServerError", err)
	}
	if !maps.Equal(before, snapshot(t, d)) {
		t.Error("refusal changed something")
	}
}

func TestCleanupBadInput(t *testing.T) {
	ds, _ := setup.get(t)
	ctx := context.Background()
	t.Run("no permission", func(t *testing.T) {
		_, err := PlanCleanup(ctx, downstream(t, ds, clustertest.LimitedToken), DefaultCleanupOptions())
		var pe *cluster.PermissionError
		if !errors.As(err, &pe) {
			t.Fatalf("err = %v, want PermissionError", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		cfg := ds.Config(clustertest.AdminToken)
		cfg.Host, cfg.Timeout = "https://127.0.0.1:1", 2*time.Second
		c, _ := kubernetes.NewForConfig(cfg)
		_, err := PlanCleanup(ctx, Downstream{Client: c, Server: cfg.Host}, DefaultCleanupOptions())
		var ue *cluster.UnreachableError
		if !errors.As(err, &ue) || !cluster.IsPreflight(err) {
			t.Fatalf("err = %v, want UnreachableError", err)
		}
	})
	t.Run("local cluster without Rancher's CRDs", func(t *testing.T) {
		// The downstream server has no management.cattle.io resources.
		_, err := PlanOrphans(ctx, management(t, ds), downstream(t, ds, clustertest.AdminToken), DefaultRecordOptions())
		var me *MissingResourceError
		if !errors.As(err, &me) {
			t.Fatalf("err = %v, want MissingResourceError", err)
		}
	})
	t.Run("unknown cluster", func(t *testing.T) {
		_, ls := setup.get(t)
		o := DefaultRecordOptions()
		o.ClusterID = "c-nope"
		_, err := PlanOrphans(ctx, management(t, ls), downstream(t, ds, clustertest.AdminToken), o)
		var ce *ClusterNotFoundError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want ClusterNotFoundError", err)
		}
	})
}

// gone reports whether the object is NotFound.
func isGone(t *testing.T, err error) bool {
	t.Helper()
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err != nil
}
