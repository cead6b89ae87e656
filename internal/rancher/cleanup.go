package rancher

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/nodereset/nodereset/internal/cluster"
)

// Downstream is the cluster Rancher manages (or managed).
type Downstream struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Server is the API server URL, for messages and to find the Rancher
	// cluster by its endpoint.
	Server string
}

// CleanupOptions configure a cleanup.
type CleanupOptions struct {
	// CRDs also deletes the CustomResourceDefinitions of Rancher's groups
	// (and with them every object of those kinds).
	CRDs bool
	// NamespaceTimeout bounds the wait for Rancher's namespaces and CRDs
	// to go once deleted (their controllers delete their contents first).
	NamespaceTimeout time.Duration
	// PollInterval of that wait.
	PollInterval time.Duration
	Log          *slog.Logger
}

// DefaultCleanupOptions are the ones the CLI starts from.
func DefaultCleanupOptions() CleanupOptions {
	return CleanupOptions{NamespaceTimeout: 2 * time.Minute, PollInterval: 500 * time.Millisecond}
}

// Kinds of cleanup items.
const (
	KindNamespace          = "Namespace"
	KindRole               = "Role"
	KindClusterRole        = "ClusterRole"
	KindRoleBinding        = "RoleBinding"
	KindClusterRoleBinding = "ClusterRoleBinding"
	KindValidatingWebhook  = "ValidatingWebhookConfiguration"
	KindMutatingWebhook    = "MutatingWebhookConfiguration"
	KindCRD                = "CustomResourceDefinition"
)

// Actions of cleanup items.
const (
	// ActionDelete deletes the object; for a namespace after stripping
	// its metadata finalizers (Remove lists them).
	ActionDelete = "delete"
	// ActionStrip removes Rancher's finalizers, labels and annotations
	// (Remove lists them) from a namespace that stays.
	ActionStrip = "strip"
)

// CleanupItem is one object the cleanup changes.
type CleanupItem struct {
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name"`
	UID       types.UID `json:"uid"`
	Action    string    `json:"action"`
	// Remove lists what is stripped: "finalizer X", "label X", "annotation X".
	Remove []string `json:"remove,omitempty"`
	Reason string   `json:"reason"`
}

// Object is "Kind ns/name" or "Kind name".
func (it CleanupItem) Object() string {
	if it.Namespace != "" {
		return it.Kind + " " + it.Namespace + "/" + it.Name
	}
	return it.Kind + " " + it.Name
}

// CleanupPlan is what a cleanup would change, in the order Apply runs it:
// webhooks first (Rancher's webhook would refuse the other changes),
// namespace metadata, RBAC, Rancher's namespaces, CRDs last (their
// objects live in those namespaces).
type CleanupPlan struct {
	Server   string        `json:"server"`
	Items    []CleanupItem `json:"items"`
	Warnings []string      `json:"warnings,omitempty"`
	opts     CleanupOptions
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// PlanCleanup reads the downstream cluster and returns the plan; it
// changes nothing. It refuses (RancherServerError) a cluster the Rancher
// server runs in, and checks every permission Apply needs first.
func PlanCleanup(ctx context.Context, d Downstream, o CleanupOptions) (*CleanupPlan, error) {
	if o.NamespaceTimeout <= 0 || o.PollInterval <= 0 {
		return nil, &cluster.OptionsError{Err: fmt.Errorf("namespace timeout %s and poll interval %s must be positive", o.NamespaceTimeout, o.PollInterval)}
	}
	if err := refuseServer(ctx, d); err != nil {
		return nil, err
	}
	if err := cluster.CheckAccess(ctx, d.Client, d.Server, cleanupNeeds(o.CRDs)); err != nil {
		return nil, err
	}
	p := &CleanupPlan{Server: d.Server, opts: o}
	steps := []func(context.Context, Downstream, *CleanupPlan) error{planWebhooks, planNamespaces, planRBAC}
	if o.CRDs {
		steps = append(steps, planCRDs)
	}
	for _, s := range steps {
		if err := s(ctx, d, p); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(p.Items, func(i, j int) bool { return order(p.Items[i]) < order(p.Items[j]) })
	return p, nil
}

func order(it CleanupItem) int {
	switch {
	case it.Kind == KindValidatingWebhook || it.Kind == KindMutatingWebhook:
		return 0
	case it.Kind == KindNamespace && it.Action == ActionStrip:
		return 1
	case it.Kind == KindNamespace:
		return 3
	case it.Kind == KindCRD:
		return 4
	}
	return 2
}

// refuseServer fails when cattle-system/rancher (Service or Deployment)
// exists, as Rancher's own cleanup script does.
func refuseServer(ctx context.Context, d Downstream) error {
	var found []string
	_, err := d.Client.CoreV1().Services(ServerNamespace).Get(ctx, ServerName, metav1.GetOptions{})
	switch {
	case err == nil:
		found = append(found, "Service "+ServerNamespace+"/"+ServerName)
	case !apierrors.IsNotFound(err):
		return cluster.Classify(err, d.Server, "get services")
	}
	_, err = d.Client.AppsV1().Deployments(ServerNamespace).Get(ctx, ServerName, metav1.GetOptions{})
	switch {
	case err == nil:
		found = append(found, "Deployment "+ServerNamespace+"/"+ServerName)
	case !apierrors.IsNotFound(err):
		return cluster.Classify(err, d.Server, "get deployments.apps")
	}
	if len(found) > 0 {
		return &RancherServerError{Server: d.Server, Found: found}
	}
	return nil
}

func cleanupNeeds(crds bool) []cluster.Access {
	n := []cluster.Access{
		{Verb: "list", Resource: "namespaces"}, {Verb: "update", Resource: "namespaces"}, {Verb: "delete", Resource: "namespaces"},
	}
	both := func(read, group, resource string) {
		n = append(n, cluster.Access{Verb: read, Group: group, Resource: resource}, cluster.Access{Verb: "delete", Group: group, Resource: resource})
	}
	for _, r := range []string{"roles", "clusterroles", "rolebindings", "clusterrolebindings"} {
		both("list", "rbac.authorization.k8s.io", r)
	}
	for _, r := range []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"} {
		both("get", "admissionregistration.k8s.io", r)
	}
	if crds {
		both("list", crdGVR.Group, crdGVR.Resource)
	}
	return n
}

func planWebhooks(ctx context.Context, d Downstream, p *CleanupPlan) error {
	ar := d.Client.AdmissionregistrationV1()
	v, err := ar.ValidatingWebhookConfigurations().Get(ctx, WebhookName, metav1.GetOptions{})
	switch {
	case err == nil:
		p.Items = append(p.Items, CleanupItem{Kind: KindValidatingWebhook, Name: v.Name, UID: v.UID, Action: ActionDelete, Reason: "Rancher's webhook configuration"})
	case !apierrors.IsNotFound(err):
		return cluster.Classify(err, d.Server, "get validatingwebhookconfigurations")
	}
	m, err := ar.MutatingWebhookConfigurations().Get(ctx, WebhookName, metav1.GetOptions{})
	switch {
	case err == nil:
		p.Items = append(p.Items, CleanupItem{Kind: KindMutatingWebhook, Name: m.Name, UID: m.UID, Action: ActionDelete, Reason: "Rancher's webhook configuration"})
	case !apierrors.IsNotFound(err):
		return cluster.Classify(err, d.Server, "get mutatingwebhookconfigurations")
	}
	return nil
}

func planNamespaces(ctx context.Context, d Downstream, p *CleanupPlan) error {
	nss, err := d.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return cluster.Classify(err, d.Server, "list namespaces")
	}
	for i := range nss.Items {
		ns := &nss.Items[i]
		if IsRancherNamespace(ns.Name) {
			var rm []string
			for _, f := range ns.Finalizers {
				rm = append(rm, "finalizer "+f)
			}
			p.Items = append(p.Items, CleanupItem{Kind: KindNamespace, Name: ns.Name, UID: ns.UID, Action: ActionDelete, Remove: rm, Reason: "Rancher's namespace"})
			continue
		}
		if rm := rancherMeta(ns); len(rm) > 0 {
			p.Items = append(p.Items, CleanupItem{Kind: KindNamespace, Name: ns.Name, UID: ns.UID, Action: ActionStrip, Remove: rm, Reason: "Rancher's finalizers, labels or annotations"})
		}
	}
	return nil
}

// rancherMeta lists Rancher's finalizers, labels and annotations on ns.
func rancherMeta(ns *corev1.Namespace) []string {
	var rm []string
	for _, f := range ns.Finalizers {
		if IsRancherFinalizer(f) {
			rm = append(rm, "finalizer "+f)
		}
	}
	for _, k := range sortedKeys(ns.Labels) {
		if IsRancherMetaKey(k) {
			rm = append(rm, "label "+k)
		}
	}
	for _, k := range sortedKeys(ns.Annotations) {
		if IsRancherMetaKey(k) {
			rm = append(rm, "annotation "+k)
		}
	}
	return rm
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func planRBAC(ctx context.Context, d Downstream, p *CleanupPlan) error {
	lo := metav1.ListOptions{LabelSelector: CreatorLabel + "=" + CreatorNorman}
	rb := d.Client.RbacV1()
	reason := "labelled " + CreatorLabel + "=" + CreatorNorman
	add := func(kind string, m metav1.ObjectMeta) {
		// The selector is the server's; check again, exactly, here.
		if m.Labels[CreatorLabel] == CreatorNorman {
			p.Items = append(p.Items, CleanupItem{Kind: kind, Namespace: m.Namespace, Name: m.Name, UID: m.UID, Action: ActionDelete, Reason: reason})
		}
	}
	roles, err := rb.Roles("").List(ctx, lo)
	if err != nil {
		return cluster.Classify(err, d.Server, "list roles")
	}
	for _, r := range roles.Items {
		add(KindRole, r.ObjectMeta)
	}
	croles, err := rb.ClusterRoles().List(ctx, lo)
	if err != nil {
		return cluster.Classify(err, d.Server, "list clusterroles")
	}
	for _, r := range croles.Items {
		add(KindClusterRole, r.ObjectMeta)
	}
	rbs, err := rb.RoleBindings("").List(ctx, lo)
	if err != nil {
		return cluster.Classify(err, d.Server, "list rolebindings")
	}
	for _, r := range rbs.Items {
		add(KindRoleBinding, r.ObjectMeta)
	}
	crbs, err := rb.ClusterRoleBindings().List(ctx, lo)
	if err != nil {
		return cluster.Classify(err, d.Server, "list clusterrolebindings")
	}
	for _, r := range crbs.Items {
		add(KindClusterRoleBinding, r.ObjectMeta)
	}
	return nil
}

func planCRDs(ctx context.Context, d Downstream, p *CleanupPlan) error {
	l, err := d.Dynamic.Resource(crdGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return cluster.Classify(err, d.Server, "list customresourcedefinitions")
	}
	for _, c := range l.Items {
		g := str(c.Object, "spec", "group")
		if IsRancherGroup(g) {
			p.Items = append(p.Items, CleanupItem{Kind: KindCRD, Name: c.GetName(), UID: c.GetUID(), Action: ActionDelete, Reason: "API group " + g})
		}
	}
	return nil
}
