package rancher

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/nodereset/nodereset/internal/cluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// Management is Rancher's local cluster, where its records live.
type Management struct {
	Dynamic dynamic.Interface
	Server  string
}

// The resources read on the local cluster.
var (
	ClusterGVR     = schema.GroupVersionResource{Group: "management.cattle.io", Version: "v3", Resource: "clusters"}
	NodeGVR        = schema.GroupVersionResource{Group: "management.cattle.io", Version: "v3", Resource: "nodes"}
	ProvClusterGVR = schema.GroupVersionResource{Group: "provisioning.cattle.io", Version: "v1", Resource: "clusters"}
	MachineGVR     = schema.GroupVersionResource{Group: "cluster.x-k8s.io", Version: "v1beta1", Resource: "machines"}
)

// Record kinds.
const (
	RecordNode    = "nodes.management.cattle.io"
	RecordMachine = "machines.cluster.x-k8s.io"
)

// RancherCluster is Rancher's record of the downstream cluster.
type RancherCluster struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName,omitempty"`
	APIEndpoint string `json:"apiEndpoint,omitempty"`
	// ProvNamespace/ProvName: the provisioning cluster (Rancher-provisioned
	// RKE2/K3s; its Machines live in that fleet workspace); empty for an
	// imported or RKE1 cluster.
	ProvNamespace string `json:"provisioningNamespace,omitempty"`
	ProvName      string `json:"provisioningName,omitempty"`
}

// NodeIdentity is what identifies a downstream Node.
type NodeIdentity struct {
	Name       string    `json:"name"`
	UID        types.UID `json:"uid,omitempty"`
	ProviderID string    `json:"providerID,omitempty"`
}

// Record is one management record of a node.
type Record struct {
	Kind       string    `json:"kind"`
	Namespace  string    `json:"namespace"`
	Name       string    `json:"name"`
	UID        types.UID `json:"uid"`
	Node       NodeIdentity
	Finalizers []string `json:"finalizers,omitempty"`
	Deleting   bool     `json:"deleting,omitempty"`
}

// Object is "kind ns/name".
func (r Record) Object() string { return r.Kind + " " + r.Namespace + "/" + r.Name }

// FindCluster returns the Rancher cluster with id, or (id "") the one the
// downstream server is: a Rancher proxy URL (…/k8s/clusters/<id>) names it;
// otherwise the one cluster whose status.apiEndpoint is that server.
func FindCluster(ctx context.Context, m Management, id, downstream string) (*RancherCluster, error) {
	if id == "" {
		id = proxyClusterID(downstream)
	}
	var obj *unstructured.Unstructured
	if id != "" {
		o, err := m.Dynamic.Resource(ClusterGVR).Get(ctx, id, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// A 404 is either no such cluster or no such resource.
			if _, lerr := m.Dynamic.Resource(ClusterGVR).List(ctx, metav1.ListOptions{Limit: 1}); lerr != nil {
				return nil, classifyResource(lerr, m.Server, ClusterGVR)
			}
			return nil, &ClusterNotFoundError{ID: id}
		}
		if err != nil {
			return nil, cluster.Classify(err, m.Server, "get clusters.management.cattle.io")
		}
		obj = o
	} else {
		l, err := m.Dynamic.Resource(ClusterGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, classifyResource(err, m.Server, ClusterGVR)
		}
		want := normalizeEndpoint(downstream)
		var ids []string
		for i := range l.Items {
			if want != "" && normalizeEndpoint(str(l.Items[i].Object, "status", "apiEndpoint")) == want {
				obj = &l.Items[i]
				ids = append(ids, obj.GetName())
			}
		}
		switch {
		case len(ids) == 0:
			return nil, &ClusterNotFoundError{Endpoint: downstream}
		case len(ids) > 1:
			return nil, &AmbiguousClusterError{Endpoint: downstream, IDs: ids}
		}
	}
	rc := &RancherCluster{ID: obj.GetName(), DisplayName: str(obj.Object, "spec", "displayName"), APIEndpoint: str(obj.Object, "status", "apiEndpoint")}
	return rc, findProvisioning(ctx, m, rc)
}

// findProvisioning fills in the provisioning cluster whose
// status.clusterName is rc's ID. A Rancher that does not serve the
// resource has none.
func findProvisioning(ctx context.Context, m Management, rc *RancherCluster) error {
	l, err := m.Dynamic.Resource(ProvClusterGVR).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return classifyResource(err, m.Server, ProvClusterGVR)
	}
	for _, p := range l.Items {
		if str(p.Object, "status", "clusterName") == rc.ID {
			rc.ProvNamespace, rc.ProvName = p.GetNamespace(), p.GetName()
			return nil
		}
	}
	return nil
}

// proxyClusterID is <id> of https://rancher/k8s/clusters/<id>[/...].
func proxyClusterID(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return ""
	}
	rest, ok := strings.CutPrefix(u.Path, "/k8s/clusters/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// normalizeEndpoint makes https://Host:443/ and https://host comparable:
// scheme https when absent, lower-case host, default port explicit, no
// trailing slash. Unparsable input gives "".
func normalizeEndpoint(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return u.Scheme + "://" + host + ":" + port + strings.TrimSuffix(u.Path, "/")
}

// ListRecords lists the cluster's records: management nodes in the
// cluster's namespace, and for a provisioned cluster the Cluster API
// Machines of it (spec.clusterName) in its fleet workspace.
func ListRecords(ctx context.Context, m Management, rc *RancherCluster) ([]Record, error) {
	l, err := m.Dynamic.Resource(NodeGVR).Namespace(rc.ID).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, classifyResource(err, m.Server, NodeGVR)
	}
	var out []Record
	for i := range l.Items {
		out = append(out, nodeRecord(&l.Items[i]))
	}
	if rc.ProvName == "" {
		return out, nil
	}
	ml, err := m.Dynamic.Resource(MachineGVR).Namespace(rc.ProvNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, classifyResource(err, m.Server, MachineGVR)
	}
	for i := range ml.Items {
		if str(ml.Items[i].Object, "spec", "clusterName") == rc.ProvName {
			out = append(out, machineRecord(&ml.Items[i]))
		}
	}
	return out, nil
}

// nodeRecord reads a management node: the Node's name is status.nodeName,
// its providerID spec.internalNodeSpec.providerID (Rancher copies the
// NodeSpec there). Rancher keeps no Node UID in it.
func nodeRecord(o *unstructured.Unstructured) Record {
	return Record{Kind: RecordNode, Namespace: o.GetNamespace(), Name: o.GetName(), UID: o.GetUID(),
		Node:       NodeIdentity{Name: str(o.Object, "status", "nodeName"), ProviderID: str(o.Object, "spec", "internalNodeSpec", "providerID")},
		Finalizers: o.GetFinalizers(), Deleting: o.GetDeletionTimestamp() != nil}
}

// machineRecord reads a Cluster API Machine: status.nodeRef names the Node
// with its UID, spec.providerID the machine's.
func machineRecord(o *unstructured.Unstructured) Record {
	return Record{Kind: RecordMachine, Namespace: o.GetNamespace(), Name: o.GetName(), UID: o.GetUID(),
		Node: NodeIdentity{Name: str(o.Object, "status", "nodeRef", "name"), UID: types.UID(str(o.Object, "status", "nodeRef", "uid")),
			ProviderID: str(o.Object, "spec", "providerID")},
		Finalizers: o.GetFinalizers(), Deleting: o.GetDeletionTimestamp() != nil}
}

// Match says whether a record (already of the right cluster) is the
// node's: same name, and every identity both sides carry (providerID, UID)
// equal. evidence says on what it was decided; conflict, when the name is
// the same but an identity differs, says which.
func Match(r NodeIdentity, n NodeIdentity) (ok bool, evidence, conflict string) {
	if r.Name == "" || r.Name != n.Name {
		return false, "", ""
	}
	ev := []string{"name"}
	if r.ProviderID != "" && n.ProviderID != "" {
		if r.ProviderID != n.ProviderID {
			return false, "", fmt.Sprintf("providerID %s, the node's is %s", r.ProviderID, n.ProviderID)
		}
		ev = append(ev, "providerID")
	}
	if r.UID != "" && n.UID != "" {
		if r.UID != n.UID {
			return false, "", fmt.Sprintf("node UID %s, the node's is %s", r.UID, n.UID)
		}
		ev = append(ev, "UID")
	}
	return true, strings.Join(ev, "+"), ""
}

// userNodeRemove lists the record's user-node-remove_* finalizers.
func userNodeRemove(fs []string) []string {
	var out []string
	for _, f := range fs {
		if strings.HasPrefix(f, UserNodeRemovePrefix) {
			out = append(out, f)
		}
	}
	return slices.Clip(out)
}
