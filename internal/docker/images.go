package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Images is the "image" kind for Docker: with Options.Images, the images
// that only owned containers use. It must run after the container kind in
// the same phase; an image some other container still uses (even a
// stopped one) is never planned, and Docker refuses to remove one that
// gained a user since.
type Images struct {
	opts Options
	dial dialer
}

// NewImages returns the Docker image kind; it finds nothing unless
// o.Images is set.
func NewImages(o Options) *Images { return &Images{opts: o.normalized(), dial: dialSocket} }

var _ engine.Kind = (*Images)(nil)

// Kind implements engine.Kind.
func (k *Images) Kind() plan.Kind { return plan.KindImage }

// ImageDetail is the item detail of a Docker image.
type ImageDetail struct {
	Socket string   `json:"socket"`
	ID     string   `json:"id"`
	Tags   []string `json:"tags,omitempty"`
	// UsedBy names the owned containers that used it.
	UsedBy []string `json:"usedBy"`
}

// Key implements plan.Keyer.
func (d ImageDetail) Key() string { return d.Socket + " " + d.ID }

// Discover implements engine.Kind.
func (k *Images) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	if !k.opts.Images {
		return nil, nil
	}
	socks, err := sockets(env, k.opts.Sockets)
	errs := []error{err}
	var items []plan.Item
	for _, s := range socks {
		found, err := k.discover(ctx, s)
		errs = append(errs, err)
		items = append(items, found...)
	}
	return items, errors.Join(errs...)
}

func (k *Images) discover(ctx context.Context, s socket) ([]plan.Item, error) {
	ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	c, err := connect(ctx, k.dial, s)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cs, err := listAll(ctx, c, s)
	if err != nil {
		return nil, err
	}
	is, err := c.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return nil, &SocketError{Socket: s.host, Err: fmt.Errorf("list images: %w", err)}
	}
	return selectImages(s.host, cs, is.Items, k.opts.AllContainers), nil
}

// selectImages returns the images used by owned containers and by no
// other container.
func selectImages(sock string, cs []container.Summary, is []image.Summary, all bool) []plan.Item {
	sel := newSelector(cs, all)
	users := map[string][]string{}
	kept := map[string]bool{}
	for _, c := range cs {
		if _, ok := sel.choose(c); ok {
			users[c.ImageID] = append(users[c.ImageID], name(c))
		} else {
			kept[c.ImageID] = true
		}
	}
	tags := map[string][]string{}
	for _, i := range is {
		tags[i.ID] = i.RepoTags
	}
	var items []plan.Item
	for id, us := range users {
		if id == "" || kept[id] {
			continue
		}
		sort.Strings(us)
		d := ImageDetail{Socket: sock, ID: id, Tags: slices.Sorted(slices.Values(tags[id])), UsedBy: us}
		t := id
		if len(d.Tags) > 0 {
			t = d.Tags[0]
		}
		items = append(items, plan.Item{Kind: plan.KindImage, Target: Target(t), Action: plan.ActionRemove,
			Reason: fmt.Sprintf("image used only by removed container(s) %v (--images)", us), Detail: d})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Target < items[j].Target })
	return items
}

// ImageError is the failure of one image item.
type ImageError struct {
	Image, Socket string
	Err           error
}

func (e *ImageError) Error() string {
	return fmt.Sprintf("docker image %s on %s: %v (a container still using it keeps it; remove that container or keep the image)", e.Image, e.Socket, e.Err)
}

func (e *ImageError) Unwrap() error { return e.Err }

// Apply implements engine.Kind: each tag is untagged, then the image is
// removed by ID without force, so that Docker itself refuses an image a
// container uses.
func (k *Images) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	conns := newConns(k.dial, k.opts.Timeout, env.Host.Resolve)
	defer conns.close()
	for _, it := range items {
		rec.Start(it)
		d, err := imageDetailOf(it)
		if err == nil {
			err = k.remove(ctx, conns, d)
		}
		rec.Done(it, err)
	}
}

func (k *Images) remove(ctx context.Context, conns *conns, d ImageDetail) error {
	c, err := conns.get(ctx, d.Socket)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	for _, ref := range append(slices.Clone(d.Tags), d.ID) {
		if _, err := c.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !gone(err) {
			return &ImageError{Image: ref, Socket: d.Socket, Err: err}
		}
	}
	return nil
}

func imageDetailOf(it plan.Item) (ImageDetail, error) {
	d, ok := plan.DetailAs[ImageDetail](it)
	if !ok || d.ID == "" || d.Socket == "" {
		return d, errors.New("image item has no Docker image ID; run plan again to rediscover it")
	}
	return d, nil
}
