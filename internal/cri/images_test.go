package cri

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rt "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodereset/nodereset/internal/cri/critest"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

func kubeCtr(id, pod, name, image, ref string) *rt.Container {
	return &rt.Container{Id: id, Metadata: &rt.ContainerMetadata{Name: name},
		Image: &rt.ImageSpec{Image: image}, ImageRef: ref,
		Labels: map[string]string{LabelPodName: pod, LabelPodNamespace: "ns", LabelPodUID: "u-" + pod, LabelContainerName: name}}
}

func otherCtr(id, name, image, ref string) *rt.Container {
	return &rt.Container{Id: id, Metadata: &rt.ContainerMetadata{Name: name}, Image: &rt.ImageSpec{Image: image}, ImageRef: ref}
}

func TestSelectImages(t *testing.T) {
	images := []*rt.Image{
		{Id: "sha256:aaa", RepoTags: []string{"reg/app:1"}, RepoDigests: []string{"reg/app@sha256:d1"}},
		{Id: "sha256:bbb", RepoTags: []string{"reg/shared:1"}},
		{Id: "sha256:ccc"}, // untagged
		{Id: "sha256:ddd", RepoTags: []string{"reg/unused:1"}},
		{Id: "sha256:pause", RepoTags: []string{"reg/pause:3"}},
	}
	for _, tc := range []struct {
		name string
		cs   []*rt.Container
		all  bool
		want string // targets
	}{
		{"by image ID ref", []*rt.Container{kubeCtr("1", "p", "app", "reg/app:1", "sha256:aaa")}, false, "reg/app:1"},
		{"by digest ref (newer runtimes)", []*rt.Container{kubeCtr("1", "p", "app", "sha256:aaa", "reg/app@sha256:d1")}, false, "reg/app:1"},
		{"by tag only", []*rt.Container{kubeCtr("1", "p", "app", "reg/app:1", "")}, false, "reg/app:1"},
		{"untagged image is named by ID", []*rt.Container{kubeCtr("1", "p", "app", "sha256:ccc", "sha256:ccc")}, false, "sha256:ccc"},
		{"kept when another container uses it", []*rt.Container{
			kubeCtr("1", "p", "app", "reg/shared:1", "sha256:bbb"), otherCtr("2", "buildkit", "reg/shared:1", "sha256:bbb")}, false, ""},
		{"kept when another container refers to it by tag", []*rt.Container{
			kubeCtr("1", "p", "app", "reg/app:1", "sha256:aaa"), otherCtr("2", "x", "reg/app:1", "")}, false, ""},
		{"a foreign container's image is not planned", []*rt.Container{otherCtr("2", "x", "reg/app:1", "sha256:aaa")}, false, ""},
		{"--all-containers takes foreign ones too", []*rt.Container{otherCtr("2", "x", "reg/app:1", "sha256:aaa")}, true, "reg/app:1"},
		{"two users, one item", []*rt.Container{
			kubeCtr("1", "p", "app", "reg/app:1", "sha256:aaa"), kubeCtr("2", "q", "app", "reg/app:1", "sha256:aaa")}, false, "reg/app:1"},
		{"an image not listed is skipped", []*rt.Container{kubeCtr("1", "p", "app", "reg/gone:1", "sha256:zzz")}, false, ""},
		{"labels that disagree with metadata are not the kubelet's", []*rt.Container{func() *rt.Container {
			c := kubeCtr("1", "p", "app", "reg/app:1", "sha256:aaa")
			c.Metadata.Name = "other"
			return c
		}()}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items := selectImages("/run/c.sock", tc.cs, images, tc.all)
			if got := targets(items); got != tc.want {
				t.Fatalf("images %q, want %q", got, tc.want)
			}
			for _, it := range items {
				d := it.Detail.(ImageDetail)
				if it.Kind != plan.KindImage || d.Endpoint != "/run/c.sock" || len(d.UsedBy) == 0 {
					t.Errorf("item %+v", it)
				}
			}
		})
	}
	t.Run("used by is listed once per container", func(t *testing.T) {
		items := selectImages("/s", []*rt.Container{kubeCtr("1", "p", "app", "reg/app:1", "sha256:aaa"), kubeCtr("2", "q", "app", "reg/app:1", "sha256:aaa")}, images, false)
		if d := items[0].Detail.(ImageDetail); strings.Join(d.UsedBy, " ") != "ns/p/app ns/q/app" {
			t.Fatalf("used by %v", d.UsedBy)
		}
	})
}

// TestImagesRemovedAfterPods runs against a real containerd: with --images
// the plan has exactly the image only kubelet containers use (tools), not
// the one a foreign CRI container also uses (busybox) nor the pause image;
// removing it while its pod runs fails and keeps it; after the pods it goes,
// and a second Apply is a no-op.
func TestImagesRemovedAfterPods(t *testing.T) {
	prereqs(t)
	if !testns.Enter(t, testns.Mount|testns.Net|testns.PID) {
		return
	}
	n := startNode(t)
	ctx := context.Background()
	p := n.pod("default", "web", 1, false, nil, nil)
	p.Containers = []critest.Container{{Name: "app"}, {Name: "tool", Image: critest.ToolsImage}}
	if _, err := n.ctrd.RunPods(ctx, []critest.Pod{p}, 1); err != nil {
		t.Fatal(err)
	}
	runForeignContainer(t, n, critest.BusyboxImage)
	env := testEnv(t)
	o := Options{Sockets: []string{testSocket}, Grace: time.Second, Images: true}
	pods, ctrs := New(o)
	imgs := NewImages(o)

	if none, _ := NewImages(Options{Sockets: []string{testSocket}}).Discover(ctx, env); len(none) != 0 {
		t.Fatalf("without Images: %s", targets(none))
	}
	is, err := imgs.Discover(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := targets(is); got != critest.ToolsImage {
		t.Fatalf("images %q, want only %s", got, critest.ToolsImage)
	}
	if d := is[0].Detail.(ImageDetail); strings.Join(d.UsedBy, ",") != "default/web/tool" {
		t.Errorf("used by %v", d.UsedBy)
	}

	// Out of order: its container still runs, so it must stay.
	rec := newRecorder(t)
	imgs.Apply(ctx, env, is, rec)
	if err := rec.done[is[0].Key()]; !errors.Is(err, ErrImageInUse) {
		t.Fatalf("removing an image in use: %v, want ErrImageInUse", err)
	}
	if !hasImage(t, n, critest.ToolsImage) {
		t.Fatal("an image in use was removed")
	}

	ps, _ := pods.Discover(ctx, env)
	cs, _ := ctrs.Discover(ctx, env)
	rec = newRecorder(t)
	pods.Apply(ctx, env, ps, rec)
	ctrs.Apply(ctx, env, cs, rec)
	imgs.Apply(ctx, env, is, rec)
	rec.check(append(append(ps, cs...), is...))
	if hasImage(t, n, critest.ToolsImage) {
		t.Error("the tools image is still there")
	}
	for _, keep := range []string{critest.BusyboxImage, critest.PauseImage} {
		if !hasImage(t, n, keep) {
			t.Errorf("%s was removed", keep)
		}
	}
	rec = newRecorder(t)
	imgs.Apply(ctx, env, is, rec)
	rec.check(is)
	if again, err := imgs.Discover(ctx, env); err != nil || len(again) != 0 {
		t.Fatalf("after the reset: %s %v", targets(again), err)
	}
}

// runForeignContainer starts a container through CRI without the kubelet's
// labels, as another CRI client would.
func runForeignContainer(t *testing.T, n *node, image string) {
	t.Helper()
	ctx := context.Background()
	sb := &rt.PodSandboxConfig{
		Metadata:     &rt.PodSandboxMetadata{Name: "foreign", Namespace: "other", Uid: "f0f0"},
		LogDirectory: filepath.Join(n.dir, "foreign"),
		Linux: &rt.LinuxPodSandboxConfig{CgroupParent: n.cgroup + "/foreign",
			SecurityContext: &rt.LinuxSandboxSecurityContext{NamespaceOptions: &rt.NamespaceOption{Network: rt.NamespaceMode_NODE}}},
	}
	r, err := n.ctrd.RS.RunPodSandbox(ctx, &rt.RunPodSandboxRequest{Config: sb})
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ctrd.RS.CreateContainer(ctx, &rt.CreateContainerRequest{PodSandboxId: r.GetPodSandboxId(), SandboxConfig: sb,
		Config: &rt.ContainerConfig{Metadata: &rt.ContainerMetadata{Name: "builder"}, Image: &rt.ImageSpec{Image: image},
			Command: []string{"sh", "-c", critest.TermLoop}, LogPath: "builder.log"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.ctrd.RS.StartContainer(ctx, &rt.StartContainerRequest{ContainerId: c.GetContainerId()}); err != nil {
		t.Fatal(err)
	}
}

func hasImage(t *testing.T, n *node, ref string) bool {
	t.Helper()
	out, err := n.ctrd.Ctr(context.Background(), nil, "k8s.io", "images", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Fields(out) {
		if l == ref {
			return true
		}
	}
	return false
}
