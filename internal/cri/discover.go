package cri

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	rt "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Discover implements engine.Kind. It lists sandboxes on every endpoint
// that answers and, for one that does not, the Kubernetes shims that still
// serve its pods. It changes nothing.
func (k *Pods) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	eps, err := k.r.endpoints(env.Host)
	errs := []error{err}
	var details []PodDetail
	var warn []string
	for _, ep := range eps {
		ds, w, err := k.r.discoverPods(ctx, env, ep)
		details = append(details, ds...)
		errs = append(errs, err)
		if w != "" {
			warn = append(warn, w)
		}
	}
	k.r.setWarnings(warn)
	sortPods(details)
	down := false
	for _, d := range details {
		down = down || len(d.Shims) > 0
	}
	k.r.down.Store(down)
	items := make([]plan.Item, 0, len(details))
	for _, d := range details {
		it := plan.Item{Kind: plan.KindPod, Target: d.Namespace + "/" + d.Name, Action: plan.ActionRemove,
			Reason: podReason(d, "unix://"+d.Endpoint), Detail: d}
		if len(d.Shims) > 0 {
			it.Action = plan.ActionKill
			it.Reason = shimReason(d, k.r.opts.Namespace)
		}
		items = append(items, it)
	}
	return items, errors.Join(errs...)
}

// discoverPods lists the kubelet's pods on ep. A well-known socket nobody
// named that does not answer gives a plan warning instead of an error: it
// may be some other program's, and a guess must not stop the reset.
func (r *runtime) discoverPods(ctx context.Context, env *engine.Env, ep endpoint) ([]PodDetail, string, error) {
	c, err := dial(ctx, ep, r.opts.DialTimeout)
	if ep.Guess && errors.Is(err, ErrNoSocket) {
		return nil, "", nil // gone since the probe
	}
	if ep.Guess && errors.Is(err, ErrRuntimeDown) {
		// Its shims' annotations are the CRI plugin's, set for any CRI
		// pod, not only the kubelet's: a runtime nobody named is not
		// killed around; --cri-socket opts in.
		env.Log.Warn("CRI runtime at a well-known socket is down; its shims are left", "endpoint", ep.URL(), "err", err)
		return nil, guessWarning(ep, err), nil
	}
	if errors.Is(err, ErrRuntimeDown) || errors.Is(err, ErrNoSocket) {
		ds, serr := r.shimPods(env, ep)
		if len(ds) > 0 {
			env.Log.Warn("CRI runtime is down; its Kubernetes shims will be killed instead", "endpoint", ep.URL(), "shims", len(ds), "err", err)
			return ds, "", serr
		}
		if ep.Explicit {
			return nil, "", errors.Join(err, serr)
		}
		if errors.Is(err, ErrRuntimeDown) {
			env.Log.Warn("CRI runtime is down and no Kubernetes shim of it runs", "endpoint", ep.URL(), "err", err)
		}
		return nil, "", serr
	}
	if err != nil && ep.Guess && ctx.Err() == nil {
		if errors.Is(err, ErrNotCRI) {
			// No CRI, no kubelet pods: Docker's containerd, say.
			env.Log.Debug("well-known socket does not serve CRI", "endpoint", ep.URL(), "err", err)
			return nil, "", nil
		}
		return nil, guessWarning(ep, err), nil
	}
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	env.Log.Debug("CRI runtime", "endpoint", ep.URL(), "version", c.ver)
	ds, err := r.listPods(ctx, c, ep)
	return ds, "", err
}

// guessWarning says that a well-known socket could not be looked at.
func guessWarning(ep endpoint, err error) string {
	return fmt.Sprintf("CRI socket %s exists but could not be listed (%v); no profile or flag names it, so this is not an error "+
		"and Kubernetes pods on it, if any, are not in this plan: start that runtime and run again, or pass --cri-socket %s to require it",
		ep.URL(), err, ep.URL())
}

func (r *runtime) listPods(ctx context.Context, c *conn, ep endpoint) ([]PodDetail, error) {
	sbs, err := c.rs.ListPodSandbox(ctx, &rt.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes on %s: %w", ep.URL(), err)
	}
	cs, err := c.rs.ListContainers(ctx, &rt.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containers on %s: %w", ep.URL(), err)
	}
	byPod := map[string][]string{}
	for _, ct := range cs.GetContainers() {
		byPod[ct.GetPodSandboxId()] = append(byPod[ct.GetPodSandboxId()], ct.GetId())
	}
	var out []PodDetail
	for _, sb := range sbs.GetItems() {
		kub := kubeletPod(sb.GetLabels(), sb.GetMetadata())
		if !kub && !r.all(ep) {
			continue
		}
		md := sb.GetMetadata()
		out = append(out, PodDetail{
			Endpoint: ep.HostPath, SandboxID: sb.GetId(), Namespace: md.GetNamespace(), Name: md.GetName(),
			UID: md.GetUid(), State: sb.GetState().String(), Kubelet: kub,
			Static: staticPod(sb.GetAnnotations()), Source: sb.GetAnnotations()[AnnotationConfigSource],
			DaemonSet: daemonSetPod(sb.GetLabels()), Containers: byPod[sb.GetId()],
		})
	}
	// The network mode is only in the status; ask for all at once.
	sem := make(chan struct{}, r.opts.Parallel)
	var wg sync.WaitGroup
	errs := make([]error, len(out))
	for i := range out {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			st, err := c.rs.PodSandboxStatus(ctx, &rt.PodSandboxStatusRequest{PodSandboxId: out[i].SandboxID})
			if err != nil {
				if !notFound(err) {
					errs[i] = fmt.Errorf("status of pod %s/%s (sandbox %s) on %s: %w", out[i].Namespace, out[i].Name, short(out[i].SandboxID), ep.URL(), err)
				}
				return
			}
			ns := st.GetStatus().GetLinux().GetNamespaces().GetOptions()
			out[i].HostNetwork = ns.GetNetwork() == rt.NamespaceMode_NODE
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Discover implements engine.Kind: the kubelet's containers on every
// endpoint that answers. When a runtime is down there is nothing to list;
// its containers go with the shims the pod kind kills.
func (k *Containers) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	items, err := k.r.eachRuntime(ctx, env, k.r.discoverContainers)
	// CRI lists in no particular order; the plan is stable.
	slices.SortStableFunc(items, func(a, b plan.Item) int { return strings.Compare(a.Key(), b.Key()) })
	return items, err
}

// eachRuntime runs list on every endpoint that answers, one connection
// each. A runtime that is down, or a guessed socket that fails, is the
// pod kind's to report (its shims, its warning): skipped here.
func (r *runtime) eachRuntime(ctx context.Context, env *engine.Env, list func(context.Context, *conn) ([]plan.Item, error)) ([]plan.Item, error) {
	eps, err := r.endpoints(env.Host)
	errs := []error{err}
	var items []plan.Item
	for _, ep := range eps {
		c, err := dial(ctx, ep, r.opts.DialTimeout)
		if leftToPods(ep, err) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		its, err := list(ctx, c)
		c.Close()
		items = append(items, its...)
		errs = append(errs, err)
	}
	return items, errors.Join(errs...)
}

func (r *runtime) discoverContainers(ctx context.Context, c *conn) ([]plan.Item, error) {
	sbs, err := c.rs.ListPodSandbox(ctx, &rt.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes on %s: %w", c.ep.URL(), err)
	}
	pods := map[string]bool{}
	for _, sb := range sbs.GetItems() {
		pods[sb.GetId()] = true
	}
	cs, err := c.rs.ListContainers(ctx, &rt.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containers on %s: %w", c.ep.URL(), err)
	}
	var items []plan.Item
	for _, ct := range cs.GetContainers() {
		l := ct.GetLabels()
		kub := kubeletContainer(l, ct.GetMetadata())
		if !kub && !r.all(c.ep) {
			continue
		}
		d := ContainerDetail{Endpoint: c.ep.HostPath, ContainerID: ct.GetId(), SandboxID: ct.GetPodSandboxId(),
			State: ct.GetState().String(), Image: ct.GetImage().GetImage(), ImageRef: ct.GetImageRef(),
			Orphan: !pods[ct.GetPodSandboxId()], Kubelet: kub}
		target := l[LabelPodNamespace] + "/" + l[LabelPodName] + "/" + ct.GetMetadata().GetName()
		reason := "kubelet container (io.kubernetes.container.name label), removed with its pod"
		if !kub {
			target = ct.GetMetadata().GetName() + "/" + short(ct.GetId())
			reason = "not created by the kubelet; removed because of --all-containers"
		}
		if d.Orphan {
			reason += "; its pod sandbox is gone, so it is removed alone"
		}
		items = append(items, plan.Item{Kind: plan.KindContainer, Target: target, Action: plan.ActionRemove,
			Reason: reason + " on " + c.ep.URL(), Detail: d})
	}
	return items, nil
}

// leftToPods reports whether a dial error is the pod kind's to report: a
// runtime that is down or gone (its shims are the pod kind's), or any
// failure of a socket that was only guessed (a plan warning there).
func leftToPods(ep endpoint, err error) bool {
	return err != nil && (errors.Is(err, ErrRuntimeDown) || errors.Is(err, ErrNoSocket) || ep.Guess)
}

// short is the 13-character ID prefix crictl shows.
func short(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}

// all says whether --all-containers reaches ep: only a runtime the
// profile, the kubelet or a flag named, never one merely found at a
// well-known path.
func (r *runtime) all(ep endpoint) bool { return r.opts.All && !ep.Guess }
