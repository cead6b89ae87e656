package cluster

import (
	"context"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// access is one permission a run needs.
type access struct {
	verb, group, resource, sub string
}

func (a access) String() string {
	r := a.resource
	if a.sub != "" {
		r += "/" + a.sub
	}
	if a.group != "" {
		r += "." + a.group
	}
	return a.verb + " " + r
}

// needs lists the permissions of the steps the options enable, so that a
// missing one is found before the first change, not half way.
func (r *Runner) needs() []access {
	n := []access{
		{"get", "coordination.k8s.io", "leases", ""},
		{"list", "", "pods", ""},
		{"get", "apps", "daemonsets", ""},
		{"list", "policy", "poddisruptionbudgets", ""},
		{"list", "storage.k8s.io", "volumeattachments", ""},
		{"patch", "", "nodes", ""},
		{"create", "", "pods", "eviction"},
	}
	if r.o.OnTimeout == TimeoutForceDelete {
		n = append(n, access{"delete", "", "pods", ""})
	}
	if r.o.NodeIsDown {
		n = append(n, access{"update", "", "nodes", ""})
	}
	if r.o.Mode == ModeRemove {
		n = append(n, access{"delete", "", "nodes", ""})
	}
	return n
}

// checkAccess asks the API server (SelfSubjectAccessReview, which every
// authenticated user may create) about each permission, cluster-wide.
func (r *Runner) checkAccess(ctx context.Context) error {
	var missing []string
	for _, a := range r.needs() {
		rev := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub},
		}}
		res, err := r.c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, rev, metav1.CreateOptions{})
		if err != nil {
			return classify(err, r.server, "create selfsubjectaccessreviews")
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
