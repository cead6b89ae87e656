// Package rancher takes Rancher out of an imported downstream cluster and
// keeps Rancher's management records consistent when nodes go.
//
// It works like the rest of nodereset: a Plan function reads and returns a
// value (what --dry-run prints), Apply consumes it once and returns a
// Report of what was done and what remains. Downstream objects go through
// client-go's typed client; Rancher's and Cluster API's resources, whose
// Go types would pull in Rancher's module graph, through the dynamic
// client.
//
// What is Rancher's is decided by exact identity: namespace names, the
// domain of a label, annotation or finalizer key (never a substring of a
// key or a value), the exact webhook configuration name, a CRD's API
// group. Management records are matched to Nodes by cluster, providerID and
// UID, never by name alone (rancher#45646).
package rancher

import (
	"strings"
)

// Rancher's fixed namespaces in a downstream cluster, as its own cleanup
// (user-cluster.sh, CLUSTER_CLEANUP=true) deletes them.
var fixedNamespaces = []string{
	"cattle-system", "cattle-fleet-system", "cattle-impersonation-system",
	"cattle-prometheus", "cattle-logging",
}

// Identities of Rancher's objects.
const (
	// ServerNamespace and ServerName: where the Rancher server runs; a
	// cluster holding the Service or Deployment is Rancher's own.
	ServerNamespace = "cattle-system"
	ServerName      = "rancher"
	// CreatorLabel=CreatorNorman marks the RBAC Rancher's API layer created.
	CreatorLabel  = "cattle.io/creator"
	CreatorNorman = "norman"
	// WebhookName of Rancher's validating and mutating webhook configurations.
	WebhookName = "rancher.cattle.io"
	// ProjectIDKey is the label and annotation tying a namespace to a project.
	ProjectIDKey = "field.cattle.io/projectId"
	// UserNodeRemovePrefix starts the finalizer Rancher's node controller
	// puts on a management node record: on delete it deletes the
	// downstream Node of that name.
	UserNodeRemovePrefix = "user-node-remove_"
)

// IsRancherNamespace says whether a namespace is one Rancher creates in a
// downstream cluster and its cleanup deletes: the fixed ones and the
// project-monitoring ones, cattle-project-<project id>-monitoring with a
// project id p-<lowercase alphanumerics>.
func IsRancherNamespace(name string) bool {
	for _, n := range fixedNamespaces {
		if name == n {
			return true
		}
	}
	id, ok := strings.CutPrefix(name, "cattle-project-")
	if !ok {
		return false
	}
	id, ok = strings.CutSuffix(id, "-monitoring")
	if !ok {
		return false
	}
	rest, ok := strings.CutPrefix(id, "p-")
	return ok && rest != "" && alnum(rest)
}

func alnum(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// keyDomain is the prefix of a qualified key ("cattle.io" of
// "cattle.io/status"); "" when the key has none.
func keyDomain(key string) string {
	d, _, ok := strings.Cut(key, "/")
	if !ok {
		return ""
	}
	return d
}

// IsRancherMetaKey says whether a label or annotation key on a namespace is
// Rancher's: field.cattle.io/projectId, or any key in the cattle.io or
// lifecycle.cattle.io domains. Other *.cattle.io domains are left (they are
// not Rancher's namespace bookkeeping), and so is any key merely
// containing "cattle.io" (example.com/cattle.io-ish).
func IsRancherMetaKey(key string) bool {
	if key == ProjectIDKey {
		return true
	}
	switch keyDomain(key) {
	case "cattle.io", "lifecycle.cattle.io":
		return true
	}
	return false
}

// IsRancherFinalizer says whether a namespace finalizer is Rancher's
// controller's (controller.cattle.io/namespace-auth and siblings).
func IsRancherFinalizer(f string) bool { return keyDomain(f) == "controller.cattle.io" }

// IsRancherGroup says whether an API group is Rancher's: cattle.io or a
// subdomain of it (management.cattle.io, fleet.cattle.io); not
// "notcattle.io" nor "cattle.io.example.com", and not the groups K3s and
// RKE2 ship themselves (their HelmCharts and Addons own CoreDNS, Traefik,
// metrics-server; deleting the CRDs would uninstall those).
func IsRancherGroup(group string) bool {
	if distributionGroups[group] {
		return false
	}
	return group == "cattle.io" || strings.HasSuffix(group, ".cattle.io")
}

// distributionGroups are *.cattle.io groups that belong to K3s/RKE2 and the
// system-upgrade-controller, not to Rancher.
var distributionGroups = map[string]bool{"helm.cattle.io": true, "k3s.cattle.io": true, "upgrade.cattle.io": true}
