package rancher

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func TestIsRancherNamespace(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"cattle-system", true}, {"cattle-fleet-system", true}, {"cattle-impersonation-system", true},
		{"cattle-prometheus", true}, {"cattle-logging", true},
		{"cattle-project-p-abc12-monitoring", true},
		{"cattle-project-p--monitoring", false}, {"cattle-project-q-abc12-monitoring", false},
		{"cattle-project-p-ABC-monitoring", false}, {"cattle-project-p-abc12-monitoring-x", false},
		{"cattle-project-p-a.b-monitoring", false}, {"cattle-system-old", false}, {"my-cattle-system", false},
		{"cattle-fleet-local-system", false}, {"default", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsRancherNamespace(tc.name); got != tc.want {
				t.Errorf("IsRancherNamespace(%q) = %v", tc.name, got)
			}
		})
	}
}

func TestRancherKeys(t *testing.T) {
	for _, tc := range []struct {
		key              string
		meta, fin, group bool
	}{
		{key: "field.cattle.io/projectId", meta: true},
		{key: "field.cattle.io/creatorId"},
		{key: "cattle.io/status", meta: true},
		{key: "lifecycle.cattle.io/create.namespace-auth", meta: true},
		{key: "example.com/cattle.io-ish"},
		{key: "notcattle.io/x"},
		{key: "cattle.io"},
		{key: "controller.cattle.io/namespace-auth", fin: true},
		{key: "xcontroller.cattle.io/namespace-auth"},
		{key: "kubernetes"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := IsRancherMetaKey(tc.key); got != tc.meta {
				t.Errorf("IsRancherMetaKey = %v", got)
			}
			if got := IsRancherFinalizer(tc.key); got != tc.fin {
				t.Errorf("IsRancherFinalizer = %v", got)
			}
		})
	}
	for _, tc := range []struct {
		group string
		want  bool
	}{
		{"cattle.io", true}, {"management.cattle.io", true}, {"fleet.cattle.io", true},
		{"notcattle.io", false}, {"cattle.io.example.com", false}, {"example.com", false}, {"", false},
		{"helm.cattle.io", false}, {"k3s.cattle.io", false}, {"upgrade.cattle.io", false},
	} {
		t.Run("group "+tc.group, func(t *testing.T) {
			if got := IsRancherGroup(tc.group); got != tc.want {
				t.Errorf("IsRancherGroup(%q) = %v", tc.group, got)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	for _, tc := range []struct{ in, norm, proxy string }{
		{"https://10.0.0.1:6443", "https://10.0.0.1:6443", ""},
		{"https://10.0.0.1:6443/", "https://10.0.0.1:6443", ""},
		{"10.0.0.1:6443", "https://10.0.0.1:6443", ""},
		{"https://API.Example.com", "https://api.example.com:443", ""},
		{"https://[fd00::1]:6443", "https://[fd00::1]:6443", ""},
		{"https://rancher.example.com/k8s/clusters/c-7xk2q", "https://rancher.example.com:443/k8s/clusters/c-7xk2q", "c-7xk2q"},
		{"https://rancher.example.com/k8s/clusters/c-m-abc/", "https://rancher.example.com:443/k8s/clusters/c-m-abc", "c-m-abc"},
		{"", "", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := normalizeEndpoint(tc.in); got != tc.norm {
				t.Errorf("normalize = %q, want %q", got, tc.norm)
			}
			if got := proxyClusterID(tc.in); got != tc.proxy {
				t.Errorf("proxy id = %q, want %q", got, tc.proxy)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	n := NodeIdentity{Name: "w1", UID: "u1", ProviderID: "k3s://w1"}
	for _, tc := range []struct {
		name     string
		rec      NodeIdentity
		ok       bool
		evidence string
		conflict bool
	}{
		{"all agree", NodeIdentity{Name: "w1", UID: "u1", ProviderID: "k3s://w1"}, true, "name+providerID+UID", false},
		{"no uid recorded", NodeIdentity{Name: "w1", ProviderID: "k3s://w1"}, true, "name+providerID", false},
		{"other name", NodeIdentity{Name: "w2", ProviderID: "k3s://w1"}, false, "", false},
		{"empty name", NodeIdentity{ProviderID: "k3s://w1"}, false, "", false},
		{"re-registered (uid)", NodeIdentity{Name: "w1", UID: "u0"}, false, "", true},
		{"other machine (providerID)", NodeIdentity{Name: "w1", ProviderID: "aws:///i-1"}, false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, ev, c := Match(tc.rec, n)
			if ok != tc.ok || ev != tc.evidence || (c != "") != tc.conflict {
				t.Errorf("Match = %v %q %q", ok, ev, c)
			}
		})
	}
}

func TestRecordShapes(t *testing.T) {
	b, err := os.ReadFile("testdata/record-shapes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	for _, tc := range []struct {
		name string
		got  Record
		want Record
	}{
		{"management node", nodeRecord(objs[0]), Record{Kind: RecordNode, Namespace: "c-7xk2q", Name: "m-5d8f2",
			Node: NodeIdentity{Name: "worker-1", ProviderID: "k3s://worker-1"}, Deleting: true,
			Finalizers: []string{"user-node-remove_c-7xk2q", "controller.cattle.io/node-controller"}}},
		{"machine", machineRecord(objs[1]), Record{Kind: RecordMachine, Namespace: "fleet-default", Name: "prod-pool1-abc12-xyz89",
			Node:       NodeIdentity{Name: "prod-pool1-abc12-xyz89", UID: "6f1c3a52-9d7e-4b1a-8c3e-2a1b0c9d8e7f", ProviderID: "rke2://prod-pool1-abc12-xyz89"},
			Finalizers: []string{"machine.cluster.x-k8s.io"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, w := tc.got, tc.want
			if g.Kind != w.Kind || g.Namespace != w.Namespace || g.Name != w.Name || g.Node != w.Node || g.Deleting != w.Deleting || len(g.Finalizers) != len(w.Finalizers) {
				t.Errorf("got %+v\nwant %+v", g, w)
			}
		})
	}
	if got := userNodeRemove(objs[0].GetFinalizers()); len(got) != 1 || got[0] != "user-node-remove_c-7xk2q" {
		t.Errorf("userNodeRemove = %v", got)
	}
}
