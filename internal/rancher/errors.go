package rancher

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nodereset/nodereset/internal/cluster"
)

// The errors below, returned by the Plan functions, mean nothing was
// changed. Unreachable servers and missing permissions are reported with
// internal/cluster's types, so cluster.IsPreflight knows them too.

// RancherServerError: the Rancher server itself runs in the cluster;
// cleaning it up as a downstream cluster would destroy Rancher.
type RancherServerError struct {
	Server string
	Found  []string
}

func (e *RancherServerError) Error() string {
	return fmt.Sprintf("the Rancher server runs in the cluster at %s (found %s): this is Rancher's local cluster, not a downstream one; refusing to clean it up (uninstall Rancher with its Helm chart instead); nothing was changed",
		e.Server, strings.Join(e.Found, ", "))
}

// MissingResourceError: the Rancher (local) cluster does not serve a
// resource the command needs: a wrong --rancher-kubeconfig, or a Rancher
// without that feature.
type MissingResourceError struct {
	Server   string
	Resource schema.GroupVersionResource
}

func (e *MissingResourceError) Error() string {
	return fmt.Sprintf("%s does not serve %s.%s/%s: is --rancher-kubeconfig Rancher's local cluster? Nothing was changed",
		e.Server, e.Resource.Resource, e.Resource.Group, e.Resource.Version)
}

// ClusterNotFoundError: no Rancher cluster is the downstream cluster.
type ClusterNotFoundError struct {
	Endpoint string
	ID       string
}

func (e *ClusterNotFoundError) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("Rancher has no cluster %q (list them with 'kubectl get clusters.management.cattle.io' on the local cluster); nothing was changed", e.ID)
	}
	return fmt.Sprintf("no Rancher cluster has the API endpoint %s; pass --cluster ID; nothing was changed", e.Endpoint)
}

// AmbiguousClusterError: several Rancher clusters have the endpoint.
type AmbiguousClusterError struct {
	Endpoint string
	IDs      []string
}

func (e *AmbiguousClusterError) Error() string {
	return fmt.Sprintf("Rancher clusters %s all have the API endpoint %s; pass --cluster ID; nothing was changed", strings.Join(e.IDs, ", "), e.Endpoint)
}

// ItemError is the failure of one object in an Apply.
type ItemError struct {
	Object string
	Action string
	Err    error
}

func (e *ItemError) Error() string { return fmt.Sprintf("%s %s: %v", e.Action, e.Object, e.Err) }
func (e *ItemError) Unwrap() error { return e.Err }

// classifyResource is cluster.Classify for a list of a Rancher or Cluster API
// resource: NotFound there means the resource is not served.
func classifyResource(err error, server string, gvr schema.GroupVersionResource) error {
	if apierrors.IsNotFound(err) {
		return &MissingResourceError{Server: server, Resource: gvr}
	}
	return cluster.Classify(err, server, "list "+gvr.Resource+"."+gvr.Group)
}
