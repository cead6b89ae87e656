package cluster

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// Step names, in the order they run.
const (
	StepPreflight    = "preflight"
	StepCordon       = "cordon"
	StepDrain        = "drain"
	StepOutOfService = "out-of-service taint"
	StepVolumes      = "volume detach"
	StepEtcd         = "etcd member"
	StepDelete       = "delete node"
)

// PodNote is a pod ("namespace/name") and what the plan or the drain says
// about it.
type PodNote struct {
	Pod  string `json:"pod"`
	Note string `json:"note"`
}

// PlannedStep is one step of the plan; Skip says why it will not run.
type PlannedStep struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Skip   string `json:"skip,omitempty"`
}

// Plan is what Apply will do, computed without changing anything.
type Plan struct {
	Mode Mode     `json:"mode"`
	Node NodeInfo `json:"node"`
	// Evict lists the pods the drain evicts, in order (critical last).
	Evict []PodNote `json:"evict"`
	// Left are pods the drain leaves: DaemonSet and mirror pods (the node
	// reset stops them), finished and already terminating pods.
	Left []PodNote `json:"left,omitempty"`
	// Blocked pods need a flag to be evicted; Apply refuses while any is.
	Blocked  []PodNote     `json:"blocked,omitempty"`
	Steps    []PlannedStep `json:"steps"`
	Etcd     []string      `json:"etcd,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`

	evict       []corev1.Pod
	etcd        EtcdRemoval
	etcdErr     error
	unreachable bool
}

// Runner plans and applies one run against one cluster.
type Runner struct {
	c      kubernetes.Interface
	server string
	o      Options
}

// New checks the options. server names the API server in errors.
func New(c kubernetes.Interface, server string, o Options) (*Runner, error) {
	if err := o.Validate(); err != nil {
		return nil, &OptionsError{Err: err}
	}
	return &Runner{c: c, server: server, o: o}, nil
}

// Plan runs the preflight and computes the plan; it only reads.
func (r *Runner) Plan(ctx context.Context) (*Plan, error) {
	node, err := r.c.CoreV1().Nodes().Get(ctx, r.o.Node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &NodeNotFoundError{Name: r.o.Node}
	}
	if err != nil {
		return nil, Classify(err, r.server, "get nodes/"+r.o.Node)
	}
	if err := r.checkAccess(ctx); err != nil {
		return nil, err
	}
	lease, err := r.c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		lease = nil
	case err != nil:
		return nil, Classify(err, r.server, "get lease "+corev1.NamespaceNodeLease+"/"+node.Name)
	}
	statics, err := r.c.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "tier=control-plane"})
	if err != nil {
		return nil, Classify(err, r.server, "list pods -n kube-system")
	}
	p := &Plan{Mode: r.o.Mode, Node: r.nodeInfo(node, lease, statics.Items)}
	p.unreachable = p.Node.Unreachable
	if err := r.planPods(ctx, p); err != nil {
		return nil, err
	}
	r.planSteps(ctx, p)
	return p, nil
}

func (r *Runner) nodeInfo(node *corev1.Node, lease *coordinationv1.Lease, statics []corev1.Pod) NodeInfo {
	info := NodeInfo{
		Name: node.Name, UID: string(node.UID), ProviderID: node.Spec.ProviderID,
		Unschedulable: node.Spec.Unschedulable, PeerHosts: peerHosts(node),
	}
	etcdHere, kubeadmHere := false, false
	for _, sp := range statics {
		if !has(sp.Annotations, corev1.MirrorPodAnnotationKey) {
			continue
		}
		urls, isEtcd := sp.Annotations[annoEtcdClientURLs]
		if sp.Spec.NodeName == node.Name {
			kubeadmHere = kubeadmHere || isEtcd || has(sp.Annotations, "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint")
			etcdHere = etcdHere || (isEtcd && sp.Labels["component"] == "etcd")
		}
		if isEtcd && urls != "" {
			for _, u := range splitComma(urls) {
				info.EtcdClientURLs = appendUnique(info.EtcdClientURLs, u)
			}
		}
	}
	info.Distribution, info.Evidence = detectDistribution(node, kubeadmHere)
	info.Roles = roles(node, etcdHere)
	reachability(&info, node, lease, now(), r.o.UnreachableAfter)
	return info
}

func (r *Runner) planPods(ctx context.Context, p *Plan) error {
	h := r.helper(ctx, p.unreachable)
	all, err := r.c.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", p.Node.Name).String(),
	})
	if err != nil {
		return Classify(err, r.server, "list pods on "+p.Node.Name)
	}
	// kubectl's filters decide what is evicted; its per-pod reasons are
	// private, so the plan's notes come from podNote, and a kubectl error
	// podNote did not explain is shown as it is.
	list, errs := h.GetPodsForDeletion(p.Node.Name)
	if list == nil {
		return Classify(errorsJoin(errs), r.server, "list pods on "+p.Node.Name)
	}
	evict := map[string]bool{}
	for _, pod := range list.Pods() {
		evict[string(pod.UID)] = true
	}
	var first, last []corev1.Pod
	for i := range all.Items {
		pod := &all.Items[i]
		ref := pod.Namespace + "/" + pod.Name
		note, blocked := podNote(pod, evict[string(pod.UID)], r.o)
		switch {
		case evict[string(pod.UID)] && critical(pod):
			last = append(last, *pod)
		case evict[string(pod.UID)]:
			first = append(first, *pod)
			p.Evict = append(p.Evict, PodNote{Pod: ref, Note: note})
		case blocked:
			p.Blocked = append(p.Blocked, PodNote{Pod: ref, Note: note})
		default:
			p.Left = append(p.Left, PodNote{Pod: ref, Note: note})
		}
	}
	for i := range last {
		note, _ := podNote(&last[i], true, r.o)
		p.Evict = append(p.Evict, PodNote{Pod: last[i].Namespace + "/" + last[i].Name, Note: note})
	}
	p.evict = append(first, last...)
	if len(errs) > 0 && len(p.Blocked) == 0 {
		for _, e := range errs {
			p.Blocked = append(p.Blocked, PodNote{Pod: "(kubectl drain)", Note: e.Error()})
		}
	}
	return nil
}

func (r *Runner) planSteps(ctx context.Context, p *Plan) {
	n := &p.Node
	add := func(name, action, skip string) {
		p.Steps = append(p.Steps, PlannedStep{Name: name, Action: action, Skip: skip})
	}
	cordon := "mark " + n.Name + " unschedulable"
	if n.Unschedulable {
		cordon = "already cordoned"
	}
	add(StepCordon, cordon, "")
	drainAction := fmt.Sprintf("evict %d pods (PodDisruptionBudgets respected), leave %d, within %s, then %s", len(p.Evict), len(p.Left), r.o.DrainTimeout, r.o.OnTimeout)
	if p.unreachable {
		drainAction += fmt.Sprintf("; node unreachable: grace %s, deletions not waited for", r.o.UnreachableGrace)
	}
	add(StepDrain, drainAction, "")
	switch {
	case r.o.NodeIsDown:
		add(StepOutOfService, "taint "+TaintOutOfService+"=nodeshutdown:NoExecute so volumes detach", "")
	case p.unreachable:
		p.Warnings = append(p.Warnings, "the node is unreachable: if the machine is off, pass --node-is-down so its volumes are detached ("+TaintOutOfService+" taint)")
	}
	add(StepVolumes, fmt.Sprintf("wait up to %s for the node's VolumeAttachments to go", r.o.VolumeDetachTimeout), "")
	if p.Mode != ModeRemove {
		return
	}
	r.planEtcd(ctx, p, add)
	del := "delete Node " + n.Name + " (UID " + n.UID + ")"
	skip := ""
	if n.KubeletPosting && !r.o.IgnoreKubelet {
		skip = (&KubeletAliveError{Node: n.Name, LeaseAge: n.LeaseAge}).Error()
	}
	add(StepDelete, del, skip)
}

func (r *Runner) planEtcd(ctx context.Context, p *Plan, add func(name, action, skip string)) {
	n := &p.Node
	switch {
	case !n.Has(RoleEtcd):
		add(StepEtcd, "none", "not an etcd member")
	case n.Distribution == DistK3s || n.Distribution == DistRKE2:
		add(StepEtcd, "none", string(n.Distribution)+" removes its own etcd member when the Node is deleted; checked after the delete")
	case n.Distribution == DistRKE1:
		add(StepEtcd, "none", "RKE1 etcd members are managed by rke/Rancher: remove the node there ('rke up' without it)")
	case r.o.Etcd == nil:
		add(StepEtcd, "none", "no etcd client configured: remove the member with etcdctl from another member")
	default:
		rm, err := r.o.Etcd.PlanRemoval(ctx, EtcdTarget{Name: n.Name, PeerHosts: n.PeerHosts, ClientURLs: n.EtcdClientURLs})
		if err != nil {
			// Deleting the Node would leave the member behind: Apply
			// fails this step and keeps the Node.
			p.etcdErr = err
			add(StepEtcd, "remove member "+n.Name, "refused: "+err.Error())
			p.Warnings = append(p.Warnings, "etcd member: "+err.Error()+"; the Node will not be deleted")
			return
		}
		p.etcd = rm
		p.Etcd = rm.Describe()
		add(StepEtcd, "remove member "+n.Name+" through another healthy member", "")
	}
}
