// Package cri finds and removes the pods and containers a kubelet created
// on CRI runtimes (containerd, CRI-O, cri-dockerd), kinds "pod" and
// "container", through the official CRI API (k8s.io/cri-api). What the
// kubelet created is decided by its io.kubernetes.pod.* labels agreeing with
// the CRI metadata, never by names. When a runtime does not answer, its
// Kubernetes shims (containerd-shim* with -namespace k8s.io and -address
// equal to the runtime's socket) and their process trees are killed
// instead, and the plan says that the runtime was down.
package cri

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Defaults for Options.
const (
	DefaultGrace       = 10 * time.Second
	DefaultPodTimeout  = time.Minute
	DefaultDialTimeout = 2 * time.Second
	DefaultKillTimeout = 5 * time.Second
	DefaultParallel    = 16
	DefaultNamespace   = "k8s.io"
)

// Options say where the runtimes are and how to stop what runs on them.
type Options struct {
	// Sockets are the profile's CRI endpoints (host-side paths or
	// unix:// URLs); one that does not exist is skipped. Every
	// WellKnownSockets socket that exists is looked at besides them.
	Sockets []string
	// Explicit are endpoints the user named (--cri-socket): one that does
	// not answer fails discovery, unless its shims are found.
	Explicit []string
	// KubeletRoot is where kubeadm-flags.env and config.yaml are read for
	// the kubelet's --container-runtime-endpoint ("" skips that).
	KubeletRoot string
	// Namespace is the containerd namespace of the kubelet's shims
	// (default k8s.io).
	Namespace string
	// Grace is the stop timeout given to each container (--grace, default
	// 10 s); the runtime kills what is still running after it.
	Grace time.Duration
	// PodTimeout bounds each pod's removal beyond Grace (default 1 min).
	PodTimeout time.Duration
	// DialTimeout bounds the check that a runtime answers (default 2 s).
	DialTimeout time.Duration
	// KillTimeout is how long killed shims get to exit (default 5 s).
	KillTimeout time.Duration
	// Parallel bounds the pods removed at once (default 16).
	Parallel int
	// All selects every pod and container on the CRI endpoints, not only
	// the kubelet's (--all-containers). The CLI must warn in the plan.
	All bool
	// Images makes the image kind (NewImages) plan the images that only
	// removed containers use (--images); without it, it finds nothing.
	Images bool
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.PodTimeout <= 0 {
		o.PodTimeout = DefaultPodTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.KillTimeout <= 0 {
		o.KillTimeout = DefaultKillTimeout
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	return o
}

// runtime is what both kinds share: the options, whether discovery found
// Kubernetes pods on a runtime that was down, and the pod kind's warnings.
type runtime struct {
	opts Options
	down atomic.Bool

	mu   sync.Mutex
	warn []string
}

func (r *runtime) setWarnings(w []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warn = w
}

// Warnings implements engine.Warner: what the last discovery could not look
// at without it being an error (a well-known socket that does not answer).
func (k *Pods) Warnings() []string {
	k.r.mu.Lock()
	defer k.r.mu.Unlock()
	return slices.Clone(k.r.warn)
}

// RuntimeWasDown reports whether the last discovery found Kubernetes pods
// on a runtime that did not answer. Their sandbox records stay in the
// runtime until it is back, and containerd needs the CNI config to remove
// them then: the CNI kind holds its config while this is true.
func (k *Pods) RuntimeWasDown() bool { return k.r.down.Load() }

// Pods is the "pod" kind.
type Pods struct{ r *runtime }

// Containers is the "container" kind: the kubelet's containers, applied
// after Pods in the same phase (most are gone with their pod by then; the
// rest are orphans whose sandbox is gone).
type Containers struct{ r *runtime }

// New returns the pod and container kinds for the options. List them in
// one phase in this order.
func New(o Options) (*Pods, *Containers) {
	r := &runtime{opts: o.withDefaults()}
	return &Pods{r: r}, &Containers{r: r}
}

var (
	_ engine.Warner = (*Pods)(nil)
	_ engine.Kind   = (*Pods)(nil)
	_ engine.Kind   = (*Containers)(nil)
)

// Kind implements engine.Kind.
func (k *Pods) Kind() plan.Kind { return plan.KindPod }

// Kind implements engine.Kind.
func (k *Containers) Kind() plan.Kind { return plan.KindContainer }

// PodDetail is the item detail of a pod. Target is namespace/name.
type PodDetail struct {
	// Endpoint is the runtime's socket, host-side.
	Endpoint  string `json:"endpoint"`
	SandboxID string `json:"sandboxId"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
	State     string `json:"state,omitempty"`
	// Kubelet is false only for a pod selected by --all-containers.
	Kubelet     bool   `json:"kubelet"`
	Static      bool   `json:"static,omitempty"`
	Source      string `json:"source,omitempty"`
	DaemonSet   bool   `json:"daemonSet,omitempty"`
	HostNetwork bool   `json:"hostNetwork"`
	// Containers are the IDs of the pod's containers at plan time.
	Containers []string `json:"containers,omitempty"`
	// Shims are set when the runtime was down: the shims serving the pod,
	// killed with their process trees instead of asking the runtime.
	Shims []Shim `json:"shims,omitempty"`
}

// Key implements plan.Keyer: one pod name may have several sandboxes.
func (d PodDetail) Key() string { return d.SandboxID }

// ContainerDetail is the item detail of a container. Target is
// namespace/pod/container.
type ContainerDetail struct {
	Endpoint    string `json:"endpoint"`
	ContainerID string `json:"containerId"`
	SandboxID   string `json:"sandboxId"`
	State       string `json:"state,omitempty"`
	Image       string `json:"image,omitempty"`
	ImageRef    string `json:"imageRef,omitempty"`
	// Orphan: the sandbox was not listed; the container is removed alone.
	Orphan  bool `json:"orphan,omitempty"`
	Kubelet bool `json:"kubelet"`
}

// Key implements plan.Keyer: restarts leave several containers per name.
func (d ContainerDetail) Key() string { return d.ContainerID }

func itoa(n int) string { return strconv.Itoa(n) }
