// Package docker removes the containers Kubernetes left in Docker on a node
// (kind "container"): the kubelet's dockershim/cri-dockerd containers, RKE1's
// system containers and the Rancher node agent, together with the anonymous
// volumes Docker made for them, and with Options.Images (kind "image") the
// images only they used. It talks to dockerd through the Docker Engine API;
// a container is selected by its labels, its exact name and its image
// repository, never by matching text, and a plain `docker run` container is
// never touched unless AllContainers asks for every container.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Defaults for Options.
const (
	DefaultGrace    = 10 * time.Second
	DefaultParallel = 8
	DefaultTimeout  = 30 * time.Second
)

// Options say which daemons to ask and how to remove.
type Options struct {
	// Sockets are host-side Docker Engine API socket paths
	// (/var/run/docker.sock). Missing ones are skipped. cri-dockerd's
	// socket speaks CRI, not this API: it does not belong here.
	Sockets []string
	// AllContainers selects every container, as the seeds' cleanup
	// scripts do; the plan says so on each item.
	AllContainers bool
	// Images removes, after the containers, the images that only removed
	// containers used (the Images kind).
	Images bool
	// Grace is how long a container gets after SIGTERM before Docker kills
	// it (default 10 s; Docker counts whole seconds, rounded up).
	Grace time.Duration
	// Parallel bounds how many containers are removed at once (default 8).
	Parallel int
	// Timeout bounds each API call other than the stop (default 30 s).
	Timeout time.Duration
}

func (o Options) normalized() Options {
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// Kind is the "container" kind for Docker.
type Kind struct {
	opts Options
	dial dialer
}

// New returns the Docker container kind.
func New(o Options) *Kind { return &Kind{opts: o.normalized(), dial: dialSocket} }

var _ engine.Kind = (*Kind)(nil)

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindContainer }

// WarningAllContainers is the plan warning for AllContainers.
const WarningAllContainers = "--all-containers: every Docker container is removed, also those Kubernetes did not create"

// Warnings are what the plan should show above the items.
func (k *Kind) Warnings() []string {
	if k.opts.AllContainers {
		return []string{WarningAllContainers}
	}
	return nil
}

// Detail is the item detail of a Docker container.
type Detail struct {
	// Socket is the host-side socket of the daemon that runs it.
	Socket string `json:"socket"`
	ID     string `json:"id"`
	Name   string `json:"name"`
	Image  string `json:"image"`
	Source Source `json:"source"`
	Group  Group  `json:"group"`
	// Pod is namespace/name for kubelet containers.
	Pod         string `json:"pod,omitempty"`
	Sandbox     bool   `json:"sandbox,omitempty"`
	HostNetwork bool   `json:"hostNetwork,omitempty"`
	// Volumes are the anonymous volumes Docker removes with it.
	Volumes []string `json:"volumes,omitempty"`
}

// Key implements plan.Keyer: one name may exist on two daemons.
func (d Detail) Key() string { return d.Socket + " " + d.ID }

// Target is the item target of a Docker container name.
func Target(name string) string { return "docker:" + name }

// Discover implements engine.Kind: one list call per daemon.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	socks, err := sockets(env, k.opts.Sockets)
	errs := []error{err}
	var items []plan.Item
	for _, s := range socks {
		cs, err := k.list(ctx, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		items = append(items, selectItems(env.Log, s.host, cs, k.opts.AllContainers)...)
	}
	if k.opts.AllContainers && len(items) > 0 {
		env.Log.Warn(WarningAllContainers, "containers", len(items))
	}
	return items, errors.Join(errs...)
}

// list returns every container of one daemon, running or not.
func (k *Kind) list(ctx context.Context, s socket) ([]container.Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	c, err := connect(ctx, k.dial, s)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return listAll(ctx, c, s)
}

// listAll returns every container of a connected daemon, running or not.
func listAll(ctx context.Context, c api, s socket) ([]container.Summary, error) {
	r, err := c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, &SocketError{Socket: s.host, Err: fmt.Errorf("list containers: %w", err)}
	}
	return r.Items, nil
}

// selectItems turns one daemon's containers into items, in removal order.
func selectItems(log *slog.Logger, sock string, cs []container.Summary, all bool) []plan.Item {
	sel := newSelector(cs, all)
	var items []plan.Item
	for _, c := range cs {
		ch, ok := sel.choose(c)
		if !ok {
			log.Debug("docker container not owned", "name", name(c), "image", c.Image)
			continue
		}
		d := Detail{Socket: sock, ID: c.ID, Name: name(c), Image: c.Image, Source: ch.source, Group: ch.group,
			Pod: ch.pod, Sandbox: ch.sbox, HostNetwork: ch.host, Volumes: anonymousVolumes(c)}
		reason := ch.reason
		if len(d.Volumes) > 0 {
			reason += fmt.Sprintf("; with %d anonymous volume(s)", len(d.Volumes))
		}
		items = append(items, plan.Item{Kind: plan.KindContainer, Target: Target(d.Name),
			Action: plan.ActionRemove, Reason: reason, Detail: d})
	}
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i].Detail.(Detail), items[j].Detail.(Detail)
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return strings.Compare(a.Name, b.Name) < 0
	})
	return items
}
