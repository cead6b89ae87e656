package cri

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	rt "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// PodError is the failure of one pod.
type PodError struct {
	Pod       string // namespace/name
	SandboxID string
	Endpoint  string
	Op        string
	Err       error
}

func (e *PodError) Error() string {
	return fmt.Sprintf("pod %s (sandbox %s on unix://%s): %s: %v; check the runtime's log and run reset again",
		e.Pod, short(e.SandboxID), e.Endpoint, e.Op, e.Err)
}

func (e *PodError) Unwrap() error { return e.Err }

// conns dials each endpoint once per Apply and shares the connection
// between workers; a failed dial is remembered so every pod of that
// endpoint fails at once instead of waiting on its own timeout.
type conns struct {
	r  *runtime
	mu sync.Mutex
	m  map[string]*conn
	e  map[string]error
}

func (cs *conns) get(ctx context.Context, env *engine.Env, hostPath string) (*conn, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.m[hostPath]; ok {
		return c, nil
	}
	if err, ok := cs.e[hostPath]; ok {
		return nil, err
	}
	ep := endpoint{HostPath: hostPath, Path: env.Host.Path(hostPath)}
	if p, err := env.Host.Resolve(hostPath); err == nil {
		ep.Path = p
	}
	c, err := dial(ctx, ep, cs.r.opts.DialTimeout)
	if err != nil {
		cs.e[hostPath] = err
		return nil, err
	}
	cs.m[hostPath] = c
	return c, nil
}

func (cs *conns) close() {
	for _, c := range cs.m {
		c.Close()
	}
}

func (r *runtime) newConns() *conns {
	return &conns{r: r, m: map[string]*conn{}, e: map[string]error{}}
}

// Apply implements engine.Kind: pod-network pods first, host-network pods
// after them, each wave with bounded parallelism and a deadline per pod.
func (k *Pods) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	cs := k.r.newConns()
	defer cs.close()
	type parsed struct {
		it plan.Item
		d  PodDetail
	}
	byWave := [2][]parsed{}
	for _, it := range items {
		d, ok := plan.DetailAs[PodDetail](it)
		if !ok || d.SandboxID == "" {
			rec.Start(it)
			rec.Done(it, fmt.Errorf("pod %s: item without its sandbox ID: run plan again", it.Target))
			continue
		}
		w := wave(d)
		byWave[w] = append(byWave[w], parsed{it, d})
	}
	for _, ps := range byWave {
		parallel(len(ps), k.r.opts.Parallel, func(i int) {
			p := ps[i]
			if err := ctx.Err(); err != nil {
				rec.Done(p.it, fmt.Errorf("not started: %w", err))
				return
			}
			rec.Start(p.it)
			rec.Done(p.it, k.r.removePod(ctx, env, cs, p.d))
		})
	}
}

// removePod stops the pod's running containers with the grace period (as
// the kubelet does before it stops a sandbox: StopPodSandbox alone kills
// them at once), then stops and removes the sandbox. A pod that is gone
// already is success.
func (r *runtime) removePod(ctx context.Context, env *engine.Env, cs *conns, d PodDetail) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Grace+r.opts.PodTimeout)
	defer cancel()
	fail := func(op string, err error) error {
		return &PodError{Pod: d.Namespace + "/" + d.Name, SandboxID: d.SandboxID, Endpoint: d.Endpoint, Op: op, Err: err}
	}
	if len(d.Shims) > 0 {
		if err := r.killShims(ctx, env, d.Shims); err != nil {
			return fail("kill shims of the stopped runtime", err)
		}
		return nil
	}
	c, err := cs.get(ctx, env, d.Endpoint)
	if err != nil {
		return fail("connect", err)
	}
	list, err := c.rs.ListContainers(ctx, &rt.ListContainersRequest{Filter: &rt.ContainerFilter{PodSandboxId: d.SandboxID}})
	if err != nil {
		return fail("list containers", err)
	}
	t0 := time.Now()
	var running []string
	for _, ct := range list.GetContainers() {
		if ct.GetState() == rt.ContainerState_CONTAINER_RUNNING {
			running = append(running, ct.GetId())
		}
	}
	errs := make([]error, len(running))
	parallel(len(running), len(running), func(i int) {
		_, err := c.rs.StopContainer(ctx, &rt.StopContainerRequest{ContainerId: running[i], Timeout: graceSeconds(r.opts.Grace)})
		if err != nil && !notFound(err) {
			errs[i] = fmt.Errorf("container %s: %w", short(running[i]), err)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return fail("stop containers", err)
	}
	t1 := time.Now()
	if _, err := c.rs.StopPodSandbox(ctx, &rt.StopPodSandboxRequest{PodSandboxId: d.SandboxID}); err != nil && !notFound(err) {
		return fail("stop sandbox", err)
	}
	t2 := time.Now()
	if _, err := c.rs.RemovePodSandbox(ctx, &rt.RemovePodSandboxRequest{PodSandboxId: d.SandboxID}); err != nil && !notFound(err) {
		return fail("remove sandbox", err)
	}
	env.Log.Info("removed pod", "pod", d.Namespace+"/"+d.Name, "sandbox", short(d.SandboxID), "endpoint", d.Endpoint,
		"stopContainers", t1.Sub(t0), "stopSandbox", t2.Sub(t1), "removeSandbox", time.Since(t2))
	return nil
}

// graceSeconds rounds the grace period up to whole seconds, the CRI's
// unit; 0 would mean "kill at once".
func graceSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// Apply implements engine.Kind. The pod kind ran first, so most containers
// are gone with their pods and are reported done; the rest (orphans, or
// pods that failed) are stopped with the grace period and removed.
func (k *Containers) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	cs := k.r.newConns()
	defer cs.close()
	parallel(len(items), k.r.opts.Parallel, func(i int) {
		it := items[i]
		if err := ctx.Err(); err != nil {
			rec.Done(it, fmt.Errorf("not started: %w", err))
			return
		}
		rec.Start(it)
		rec.Done(it, k.r.removeContainer(ctx, env, cs, it))
	})
}

func (r *runtime) removeContainer(ctx context.Context, env *engine.Env, cs *conns, it plan.Item) error {
	d, ok := plan.DetailAs[ContainerDetail](it)
	if !ok || d.ContainerID == "" {
		return fmt.Errorf("container %s: item without its container ID: run plan again", it.Target)
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Grace+r.opts.PodTimeout)
	defer cancel()
	fail := func(op string, err error) error {
		return fmt.Errorf("container %s (%s on unix://%s): %s: %w", it.Target, short(d.ContainerID), d.Endpoint, op, err)
	}
	c, err := cs.get(ctx, env, d.Endpoint)
	if err != nil {
		return fail("connect", err)
	}
	if _, err := c.rs.ContainerStatus(ctx, &rt.ContainerStatusRequest{ContainerId: d.ContainerID}); notFound(err) {
		return nil
	}
	if _, err := c.rs.StopContainer(ctx, &rt.StopContainerRequest{ContainerId: d.ContainerID, Timeout: graceSeconds(r.opts.Grace)}); err != nil && !notFound(err) {
		return fail("stop", err)
	}
	if _, err := c.rs.RemoveContainer(ctx, &rt.RemoveContainerRequest{ContainerId: d.ContainerID}); err != nil && !notFound(err) {
		return fail("remove", err)
	}
	return nil
}

// parallel runs fn(0..n-1) with at most limit at once and waits.
func parallel(n, limit int, fn func(i int)) {
	if limit <= 0 {
		limit = 1
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}
