package cri

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	rt "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Images is the "image" kind for CRI runtimes: with Options.Images, the
// images that only the removed (kubelet's) containers use, removed through
// the CRI ImageService. List it after the container kind in the same
// phase. An image that any other container the CRI shows still uses, in
// any state, is never planned, and Apply checks again before it removes.
//
// A run killed after the containers went and before their images did
// cannot tell those images apart on the next run (nothing uses them any
// more, and an unused image may be anyone's): they stay.
type Images struct{ r *runtime }

// NewImages returns the CRI image kind; it finds nothing unless o.Images.
func NewImages(o Options) *Images { return &Images{r: &runtime{opts: o.withDefaults()}} }

var _ engine.Kind = (*Images)(nil)

// Kind implements engine.Kind.
func (k *Images) Kind() plan.Kind { return plan.KindImage }

// ImageDetail is the item detail of a CRI image. Target is its first tag,
// or its ID when it has none.
type ImageDetail struct {
	Endpoint string   `json:"endpoint"`
	ID       string   `json:"id"`
	Tags     []string `json:"tags,omitempty"`
	Digests  []string `json:"digests,omitempty"`
	// UsedBy are the removed containers that used it (namespace/pod/container).
	UsedBy []string `json:"usedBy"`
}

// Key implements plan.Keyer.
func (d ImageDetail) Key() string { return d.Endpoint + " " + d.ID }

// ImageError is the failure of one image.
type ImageError struct {
	Image, Endpoint string
	Err             error
}

func (e *ImageError) Error() string {
	return fmt.Sprintf("image %s on unix://%s: %v", e.Image, e.Endpoint, e.Err)
}

func (e *ImageError) Unwrap() error { return e.Err }

// ErrImageInUse means a container the reset does not remove uses the image.
var ErrImageInUse = errors.New("still used by a container that is not removed; the image is kept (remove that container first, or run without --images)")

// Discover implements engine.Kind.
func (k *Images) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	if !k.r.opts.Images {
		return nil, nil
	}
	return k.r.eachRuntime(ctx, env, func(ctx context.Context, c *conn) ([]plan.Item, error) {
		cs, err := c.rs.ListContainers(ctx, &rt.ListContainersRequest{})
		if err != nil {
			return nil, fmt.Errorf("list containers on %s: %w", c.ep.URL(), err)
		}
		is, err := c.is.ListImages(ctx, &rt.ListImagesRequest{})
		if err != nil {
			return nil, fmt.Errorf("list images on %s: %w", c.ep.URL(), err)
		}
		return selectImages(c.ep.HostPath, cs.GetContainers(), is.GetImages(), k.r.all(c.ep)), nil
	})
}

// imageIndex finds an image by ID, tag or digest, the three forms a
// container's image reference takes depending on the runtime.
type imageIndex map[string]*rt.Image

func newImageIndex(is []*rt.Image) imageIndex {
	ix := imageIndex{}
	for _, im := range is {
		for _, ref := range slices.Concat([]string{im.GetId()}, im.GetRepoTags(), im.GetRepoDigests()) {
			if ref != "" {
				ix[ref] = im
			}
		}
	}
	return ix
}

// of returns the image a container uses, or nil when it is not listed.
func (ix imageIndex) of(ct *rt.Container) *rt.Image {
	for _, ref := range []string{ct.GetImageRef(), ct.GetImage().GetImage(), ct.GetImage().GetUserSpecifiedImage()} {
		if im := ix[ref]; im != nil {
			return im
		}
	}
	return nil
}

// selectImages returns the images the selected containers (the kubelet's,
// or all with --all-containers) use and no other container does.
func selectImages(ep string, cs []*rt.Container, is []*rt.Image, all bool) []plan.Item {
	ix := newImageIndex(is)
	users := map[string][]string{}
	kept := map[string]bool{}
	for _, ct := range cs {
		im := ix.of(ct)
		if im == nil {
			continue
		}
		if kubeletContainer(ct.GetLabels(), ct.GetMetadata()) || all {
			users[im.GetId()] = append(users[im.GetId()], containerName(ct))
		} else {
			kept[im.GetId()] = true
		}
	}
	var items []plan.Item
	for _, im := range is {
		us := users[im.GetId()]
		if len(us) == 0 || kept[im.GetId()] {
			continue
		}
		slices.Sort(us)
		d := ImageDetail{Endpoint: ep, ID: im.GetId(), Tags: slices.Sorted(slices.Values(im.GetRepoTags())),
			Digests: slices.Sorted(slices.Values(im.GetRepoDigests())), UsedBy: slices.Compact(us)}
		target := cmp.Or(firstOf(d.Tags), d.ID)
		items = append(items, plan.Item{Kind: plan.KindImage, Target: target, Action: plan.ActionRemove,
			Reason: fmt.Sprintf("used only by removed container(s) %s on unix://%s (--images)", strings.Join(d.UsedBy, ", "), ep),
			Detail: d})
	}
	slices.SortFunc(items, func(a, b plan.Item) int { return strings.Compare(a.Key(), b.Key()) })
	return items
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// containerName is namespace/pod/container for the kubelet's containers,
// name/ID otherwise.
func containerName(ct *rt.Container) string {
	l := ct.GetLabels()
	if kubeletContainer(l, ct.GetMetadata()) {
		return l[LabelPodNamespace] + "/" + l[LabelPodName] + "/" + ct.GetMetadata().GetName()
	}
	return ct.GetMetadata().GetName() + "/" + short(ct.GetId())
}

// Apply implements engine.Kind. It runs after the pods and containers are
// gone; each image is checked again against the containers that are left
// (one that failed to go keeps its image), then removed by ID.
func (k *Images) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	cs := k.r.newConns()
	defer cs.close()
	engine.ApplyEach(ctx, items, rec, func(it plan.Item) error {
		d, ok := plan.DetailAs[ImageDetail](it)
		if !ok || d.ID == "" || d.Endpoint == "" {
			return fmt.Errorf("image %s: item without its image ID: run plan again", it.Target)
		}
		ctx, cancel := context.WithTimeout(ctx, k.r.opts.PodTimeout)
		defer cancel()
		return k.r.removeImage(ctx, env, cs, d)
	})
}

func (r *runtime) removeImage(ctx context.Context, env *engine.Env, cs *conns, d ImageDetail) error {
	fail := func(err error) error {
		return &ImageError{Image: cmp.Or(firstOf(d.Tags), d.ID), Endpoint: d.Endpoint, Err: err}
	}
	c, err := cs.get(ctx, env, d.Endpoint)
	if err != nil {
		return fail(err)
	}
	list, err := c.rs.ListContainers(ctx, &rt.ListContainersRequest{})
	if err != nil {
		return fail(fmt.Errorf("list containers: %w", err))
	}
	ix := newImageIndex([]*rt.Image{{Id: d.ID, RepoTags: d.Tags, RepoDigests: d.Digests}})
	for _, ct := range list.GetContainers() {
		if ix.of(ct) != nil {
			return fail(fmt.Errorf("container %s: %w", containerName(ct), ErrImageInUse))
		}
	}
	if _, err := c.is.RemoveImage(ctx, &rt.RemoveImageRequest{Image: &rt.ImageSpec{Image: d.ID}}); err != nil && !notFound(err) {
		return fail(fmt.Errorf("remove: %w", err))
	}
	env.Log.Info("removed image", "image", d.ID, "tags", d.Tags, "endpoint", d.Endpoint)
	return nil
}
