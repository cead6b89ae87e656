package cluster

import (
	"context"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Access is one permission a run needs; Namespace "" asks cluster-wide.
type Access struct {
	Verb, Group, Resource, Subresource, Namespace string
}

func (a Access) String() string {
	r := a.Resource
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	if a.Group != "" {
		r += "." + a.Group
	}
	if a.Namespace != "" {
		r += " in " + a.Namespace
	}
	return a.Verb + " " + r
}

// CheckAccess asks the API server at server (SelfSubjectAccessReview,
// which every authenticated user may create) about each permission, so
// that a missing one stops a run before its first change, not half way.
// The missing ones come back together as one *PermissionError.
func CheckAccess(ctx context.Context, c kubernetes.Interface, server string, need []Access) error {
	var missing []string
	for _, a := range need {
		rev := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.Verb, Group: a.Group, Resource: a.Resource, Subresource: a.Subresource, Namespace: a.Namespace},
		}}
		res, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, rev, metav1.CreateOptions{})
		if err != nil {
			return Classify(err, server, "create selfsubjectaccessreviews")
		}
		if !res.Status.Allowed {
			missing = append(missing, a.String())
		}
	}
	if len(missing) > 0 {
		return &PermissionError{Missing: missing}
	}
	return nil
}

// needs lists the permissions of the steps the options enable.
func (r *Runner) needs() []Access {
	n := []Access{
		{Verb: "get", Group: "coordination.k8s.io", Resource: "leases"},
		{Verb: "list", Resource: "pods"},
		{Verb: "get", Group: "apps", Resource: "daemonsets"},
		{Verb: "list", Group: "policy", Resource: "poddisruptionbudgets"},
		{Verb: "list", Group: "storage.k8s.io", Resource: "volumeattachments"},
		{Verb: "patch", Resource: "nodes"},
		{Verb: "create", Resource: "pods", Subresource: "eviction"},
	}
	if r.o.OnTimeout == TimeoutForceDelete {
		n = append(n, Access{Verb: "delete", Resource: "pods"})
	}
	if r.o.NodeIsDown {
		n = append(n, Access{Verb: "update", Resource: "nodes"})
	}
	if r.o.Mode == ModeRemove {
		n = append(n, Access{Verb: "delete", Resource: "nodes"})
	}
	return n
}

func (r *Runner) checkAccess(ctx context.Context) error {
	return CheckAccess(ctx, r.c, r.server, r.needs())
}
