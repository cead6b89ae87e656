package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/plan"
)

// TestProfileRerunRKE1: a second reset on a cleaned RKE1 node goes by the
// profile the first one recorded, not by kubeadm's defaults, so the
// operator's /etc/kubernetes/README.local (a decoy) stays where it is and
// verify, without --profile, finds the node clean.
func TestProfileRerunRKE1(t *testing.T) {
	n := profileNode(t, "rke1")
	if r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...); r.code != 0 {
		t.Fatalf("first reset: %s", r)
	}
	p := planJSON(t, n)
	if got := strings.Join(p.Profiles, "+"); got != "rke1" {
		t.Errorf("plan after reset: profiles %q, want rke1 (the recorded one); evidence %q", got, p.Evidence)
	}
	if !slices.ContainsFunc(p.Evidence, func(e string) bool { return strings.HasPrefix(e, "recorded by the last run") }) {
		t.Errorf("plan evidence does not name the recorded profile: %q", p.Evidence)
	}
	for _, it := range p.Items() {
		t.Errorf("a cleaned node plans %s %s (%s)", it.Kind, it.Target, it.Reason)
	}
	if r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...); r.code != 0 {
		t.Fatalf("second reset: %s", r)
	}
	checkDecoys(t, n)
	if v, code := verifyJSON(t, n); code != 0 || !v.Clean {
		t.Errorf("verify without --profile after two resets: exit %d %+v", code, v)
	}
}

// TestProfileLeftoverWarning: on the RKE2 node, K3s is seen only in files
// an earlier install left; the plan says so in a warning that names them
// and suggests --profile, and names the live profile to choose.
func TestProfileLeftoverWarning(t *testing.T) {
	n := profileNode(t, "rke2")
	p := planJSON(t, n)
	if got := strings.Join(p.Profiles, "+"); got != "rke2+k3s" {
		t.Fatalf("profiles %q, want rke2+k3s", got)
	}
	var w string
	for _, x := range p.Warnings {
		if strings.HasPrefix(x, "profile k3s is detected only from files") {
			w = x
		}
	}
	for _, want := range []string{"/var/lib/rancher/k3s/server", "--profile rke2 "} {
		if !strings.Contains(w, want) {
			t.Errorf("leftover warning lacks %q: %q (all: %q)", want, w, p.Warnings)
		}
	}
	for _, x := range p.Warnings {
		if strings.HasPrefix(x, "profile rke2 ") {
			t.Errorf("the running RKE2 is warned about as leftovers: %q", x)
		}
	}
	// Chosen explicitly: no warning.
	r := nodereset(t, n, "plan", "-o", "json", "--profile", "rke2")
	if r.code != 0 {
		t.Fatalf("plan --profile rke2: %s", r)
	}
	if strings.Contains(r.stdout, "detected only from files") {
		t.Errorf("plan --profile rke2 still warns about leftovers:\n%s", r.stdout)
	}
}

// TestProfileKubeletStaysEnabled: on the kubeadm node, reset leaves the
// kubelet package's unit enabled (kubeadm join expects it) while the
// non-package etcd.service is disabled.
func TestProfileKubeletStaysEnabled(t *testing.T) {
	n := node(t, 1, 1)
	p := planJSON(t, n)
	for _, it := range p.Items() {
		if it.Kind == plan.KindService && it.Target == "kubelet.service" {
			t.Errorf("kubelet.service planned (%s): with nothing running there is nothing to stop, and it stays enabled", it.Action)
		}
	}
	if r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...); r.code != 0 {
		t.Fatalf("reset: %s", r)
	}
	snap := snapshot(t, n)
	if !strings.Contains(snap, "\npath /etc/systemd/system/multi-user.target.wants/kubelet.service ") {
		t.Error("reset removed kubelet.service's enablement link")
	}
	if strings.Contains(snap, "\npath /etc/systemd/system/multi-user.target.wants/etcd.service ") {
		t.Error("etcd.service is still enabled after reset")
	}
}
