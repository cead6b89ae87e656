package cri

import (
	"cmp"
	"slices"
	"strings"

	rt "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels and annotations the kubelet puts on what it creates
// (pkg/kubelet/types/labels.go, pkg/kubelet/kuberuntime/labels.go). They are
// compared as exact keys and values, never as substrings.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"

	// AnnotationConfigSource is "file" or "http" for a static pod (the
	// kubelet copies every pod annotation onto the sandbox).
	AnnotationConfigSource = "kubernetes.io/config.source"
	// AnnotationConfigMirror is set on the mirror pod of a static pod.
	AnnotationConfigMirror = "kubernetes.io/config.mirror"

	// LabelTemplateGeneration is added only by the DaemonSet controller
	// (apps/v1 DaemonSetTemplateGenerationKey); with the revision hash, and
	// without a StatefulSet's pod-name label, it marks a DaemonSet pod.
	LabelTemplateGeneration = "pod-template-generation"
	LabelRevisionHash       = "controller-revision-hash"
	LabelStatefulSetPod     = "statefulset.kubernetes.io/pod-name"
)

// kubeletPod reports whether a sandbox was created by a kubelet: its pod
// labels are all present and agree with the CRI metadata the kubelet sets
// from the same pod.
func kubeletPod(labels map[string]string, md *rt.PodSandboxMetadata) bool {
	name, ns, uid := labels[LabelPodName], labels[LabelPodNamespace], labels[LabelPodUID]
	return name != "" && ns != "" && uid != "" && md != nil &&
		md.GetName() == name && md.GetNamespace() == ns && md.GetUid() == uid
}

// kubeletContainer reports whether a container was created by a kubelet.
func kubeletContainer(labels map[string]string, md *rt.ContainerMetadata) bool {
	name := labels[LabelContainerName]
	return name != "" && labels[LabelPodName] != "" && labels[LabelPodNamespace] != "" &&
		labels[LabelPodUID] != "" && md != nil && md.GetName() == name
}

// staticPod reports whether the kubelet started the pod from a file or URL
// rather than from the API server.
func staticPod(ann map[string]string) bool {
	s := ann[AnnotationConfigSource]
	return s == "file" || s == "http" || ann[AnnotationConfigMirror] != ""
}

// daemonSetPod decides from the pod's labels alone, since ownerReferences
// never reach the runtime: pod-template-generation is written only by the
// DaemonSet controller; a StatefulSet has the revision hash but its own
// pod-name label.
func daemonSetPod(labels map[string]string) bool {
	_, gen := labels[LabelTemplateGeneration]
	_, rev := labels[LabelRevisionHash]
	_, sts := labels[LabelStatefulSetPod]
	return gen && rev && !sts
}

// podReason says why a pod is owned and what kind of pod it is.
func podReason(d PodDetail, endpoint string) string {
	var what []string
	switch {
	case !d.Kubelet:
		what = append(what, "not created by the kubelet (no io.kubernetes.pod.* labels); removed because of --all-containers")
	case d.Static:
		what = append(what, "static pod ("+AnnotationConfigSource+"="+d.Source+")")
	case d.DaemonSet:
		what = append(what, "DaemonSet pod (labels "+LabelTemplateGeneration+" and "+LabelRevisionHash+")")
	default:
		what = append(what, "kubelet pod (io.kubernetes.pod.* labels)")
	}
	if d.HostNetwork {
		what = append(what, "host network")
	} else {
		what = append(what, "pod network")
	}
	if n := len(d.Containers); n > 0 {
		what = append(what, plural(n, "container"))
	}
	if d.State != "" {
		what = append(what, strings.ToLower(strings.TrimPrefix(d.State, "SANDBOX_")))
	}
	return strings.Join(what, ", ") + " on " + endpoint
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return itoa(n) + " " + s + "s"
}

// wave is the order in which pods go, as in Talos's reset: pods on the pod
// network first, while the CNI (itself a host-network DaemonSet) can still
// tear their networking down; host-network pods (CNI, kube-proxy, static
// control-plane pods) last.
func wave(d PodDetail) int {
	if d.HostNetwork {
		return 1
	}
	return 0
}

// podLess orders pod details for the plan and for Apply: by wave, then
// static pods after the others of their wave, then by namespace, name and
// sandbox ID so the plan is stable.
func podLess(a, b PodDetail) int {
	return cmp.Or(
		cmp.Compare(wave(a), wave(b)),
		compareBool(a.Static, b.Static),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.SandboxID, b.SandboxID),
	)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// sortPods sorts in place with podLess.
func sortPods(ds []PodDetail) { slices.SortStableFunc(ds, podLess) }
