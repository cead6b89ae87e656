package clustertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Dynamic is an admin dynamic client.
func (s *Server) Dynamic(t testing.TB) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(s.quiet())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Apply creates every object of a multi-document YAML (CRDs first, each
// waited for until Established, so later documents may be of their kinds)
// and returns them as created. Status is written through the status
// subresource when the kind has one, as a controller would.
func (s *Server) Apply(t testing.TB, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	docs, err := decodeAll(manifest)
	if err != nil {
		t.Fatalf("decode manifest: %v", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(s.Config(AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn := s.Dynamic(t)
	var out []*unstructured.Unstructured
	for _, u := range docs {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			mapper.Reset() // a CRD created just before
			if m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				t.Fatalf("map %s: %v", gvk, err)
			}
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			ri = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		status, hasStatus := u.Object["status"]
		c, err := ri.Create(ctx, u, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s %s/%s: %v", gvk.Kind, u.GetNamespace(), u.GetName(), err)
		}
		if hasStatus && gvk.Group != "" && gvk.Kind != "CustomResourceDefinition" {
			c.Object["status"] = status
			if s2, err := ri.UpdateStatus(ctx, c, metav1.UpdateOptions{}); err == nil {
				c = s2
			} else if !apierrors.IsNotFound(err) {
				t.Fatalf("status of %s %s: %v", gvk.Kind, u.GetName(), err)
			}
		}
		if gvk.Kind == "CustomResourceDefinition" {
			waitEstablished(t, ctx, dyn, u.GetName())
		}
		out = append(out, c)
	}
	return out
}

// quiet is the admin config without the server's deprecation warnings,
// which sweeping every resource would print by the dozen.
func (s *Server) quiet() *rest.Config {
	c := s.Config(AdminToken)
	c.WarningHandler = rest.NoWarnings{}
	return c
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func waitEstablished(t testing.TB, ctx context.Context, dyn dynamic.Interface, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
		for _, x := range conds {
			m, _ := x.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}

func decodeAll(b []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// FinalizeNamespaces plays the namespace controller until the test ends:
// a terminating namespace without metadata finalizers has its objects
// deleted (every namespaced resource the server lists) and is then
// finalized, so that deleted namespaces really go, as in a cluster.
func (s *Server) FinalizeNamespaces(t testing.TB) {
	t.Helper()
	c, err := kubernetes.NewForConfig(s.quiet())
	if err != nil {
		t.Fatal(err)
	}
	dyn := s.Dynamic(t)
	dc, err := discovery.NewDiscoveryClientForConfig(s.quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			finalizeOnce(ctx, c, dyn, dc)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func finalizeOnce(ctx context.Context, c kubernetes.Interface, dyn dynamic.Interface, dc discovery.DiscoveryInterface) {
	nss, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range nss.Items {
		ns := &nss.Items[i]
		if ns.DeletionTimestamp == nil || len(ns.Finalizers) > 0 || len(ns.Spec.Finalizers) == 0 {
			continue
		}
		lists, _ := dc.ServerPreferredNamespacedResources()
		for _, l := range lists {
			gv, err := schema.ParseGroupVersion(l.GroupVersion)
			if err != nil {
				continue
			}
			for _, r := range l.APIResources {
				if !hasVerb(r.Verbs, "deletecollection") {
					continue
				}
				_ = dyn.Resource(gv.WithResource(r.Name)).Namespace(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
			}
		}
		ns.Spec.Finalizers = []corev1.FinalizerName{}
		_, _ = c.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
	}
}

func hasVerb(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}
