package docker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// ContainerError is the failure of one container item.
type ContainerError struct {
	Name, ID, Socket string
	Op               string
	Err              error
}

func (e *ContainerError) Error() string {
	return fmt.Sprintf("docker container %s (%.12s on %s): %s: %v", e.Name, e.ID, e.Socket, e.Op, e.Err)
}

func (e *ContainerError) Unwrap() error { return e.Err }

// ErrNoDetail is returned for an item without the container ID Discover
// records: a name alone could name a container created since.
var ErrNoDetail = errors.New("container item has no Docker container ID; run plan again to rediscover it")

// detailOf recovers an item's Detail, also from a plan read back from JSON.
func detailOf(it plan.Item) (Detail, error) {
	d, ok := plan.DetailAs[Detail](it)
	if !ok || d.ID == "" || d.Socket == "" {
		return d, ErrNoDetail
	}
	return d, nil
}

// Apply implements engine.Kind: group after group (see Group), the
// containers of a group Parallel at a time, each stopped with Grace and
// removed with its anonymous volumes. A container already gone is done.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	conns := newConns(k.dial, k.opts.Timeout, env.Host.Resolve)
	defer conns.close()
	groups := map[Group][]work{}
	for _, it := range items {
		d, err := detailOf(it)
		if err != nil {
			rec.Start(it)
			rec.Done(it, err)
			continue
		}
		groups[d.Group] = append(groups[d.Group], work{it, d})
	}
	for g := GroupControllers; g <= GroupOther; g++ {
		k.applyGroup(ctx, env, groups[g], conns, rec)
	}
}

type work struct {
	it plan.Item
	d  Detail
}

func (k *Kind) applyGroup(ctx context.Context, env *engine.Env, ws []work, conns *conns, rec engine.Recorder) {
	sem := make(chan struct{}, k.opts.Parallel)
	var wg sync.WaitGroup
	for _, w := range ws {
		rec.Start(w.it)
		if ctx.Err() != nil {
			rec.Done(w.it, &ContainerError{Name: w.d.Name, ID: w.d.ID, Socket: w.d.Socket, Op: "remove", Err: ctx.Err()})
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			err := k.remove(ctx, conns, w.d)
			env.Log.Debug("docker container removed", "name", w.d.Name, "took", time.Since(start), "err", err)
			rec.Done(w.it, err)
		})
	}
	wg.Wait()
}

// remove stops and removes one container within its own deadline: the
// grace period plus the API timeout.
func (k *Kind) remove(ctx context.Context, conns *conns, d Detail) error {
	fail := func(op string, err error) error {
		return &ContainerError{Name: d.Name, ID: d.ID, Socket: d.Socket, Op: op, Err: err}
	}
	c, err := conns.get(ctx, d.Socket)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, k.opts.Grace+k.opts.Timeout)
	defer cancel()
	secs := int(math.Ceil(k.opts.Grace.Seconds()))
	// Stopping first lets the process exit on SIGTERM; a stopped container
	// is not restarted by its restart policy (RKE's are "always").
	if _, err := c.ContainerStop(ctx, d.ID, client.ContainerStopOptions{Timeout: &secs}); err != nil && !gone(err) {
		return fail("stop", err)
	}
	for {
		_, err := c.ContainerRemove(ctx, d.ID, client.ContainerRemoveOptions{RemoveVolumes: true, Force: true})
		switch {
		case err == nil, gone(err):
			return nil
		case cerrdefs.IsConflict(err) && ctx.Err() == nil:
			// "removal already in progress" (a crashed run's, or dockerd's
			// own after --rm): wait for it, within the deadline.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		default:
			return fail("remove", err)
		}
	}
}

// conns dials each socket once per Apply and shares the client.
type conns struct {
	dial    dialer
	resolve func(hostPath string) (string, error)
	timeout time.Duration
	mu      sync.Mutex
	open    map[string]api
	failed  map[string]error
}

func newConns(d dialer, timeout time.Duration, resolve func(string) (string, error)) *conns {
	return &conns{dial: d, resolve: resolve, timeout: timeout, open: map[string]api{}, failed: map[string]error{}}
}

// get returns the client for a host-side socket path as Discover
// recorded it; nodereset's own view of it is resolved under the host root.
func (c *conns) get(ctx context.Context, sock string) (api, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.open[sock]; ok {
		return a, nil
	}
	if err, ok := c.failed[sock]; ok {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p, err := c.resolve(sock)
	if err != nil {
		err = &SocketError{Socket: sock, Err: err}
		c.failed[sock] = err
		return nil, err
	}
	a, err := connect(ctx, c.dial, socket{host: sock, path: p})
	if err != nil {
		c.failed[sock] = err
		return nil, err
	}
	c.open[sock] = a
	return a, nil
}

func (c *conns) close() {
	for _, a := range c.open {
		a.Close()
	}
}
