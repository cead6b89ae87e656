package sandbox

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/nodereset/nodereset/pkg/plan"
)

// dockerSpec is one container the docker feature plants.
type dockerSpec struct {
	name, image string
	labels      map[string]string
	net         string // "host", "none", or "pod:<sandbox spec name>"
	sandbox     bool   // a pod sandbox: started before the pods' containers
	early       bool   // created first: others take its volumes
	created     bool   // created, never started (an exited RKE helper, an old attempt)
	restart     container.RestartPolicyMode
	anon        []string // anonymous volumes (image VOLUME / -v /path)
	binds       []string // name:/path of named volumes
	volumesFrom []string
	decoy       bool
}

// loop is the containers' process: it exits on TERM like a real
// component, so docker stop is quick.
var loop = []string{"/bin/sh", "-c", `trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done`}

func (s dockerSpec) config(ids map[string]string) (*container.Config, *container.HostConfig) {
	labels := map[string]string{}
	for k, v := range s.labels {
		labels[k] = v
	}
	net := s.net
	if sb, ok := strings.CutPrefix(net, "pod:"); ok {
		net = "container:" + ids[sb]
		labels["io.kubernetes.sandbox.id"] = ids[sb]
	}
	if s.decoy {
		labels[decoyLabel] = "true"
	}
	cfg := &container.Config{Image: s.image, Cmd: loop, Labels: labels, Volumes: map[string]struct{}{}}
	for _, v := range s.anon {
		cfg.Volumes[v] = struct{}{}
	}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(net), Binds: s.binds, VolumesFrom: s.volumesFrom,
		RestartPolicy: container.RestartPolicy{Name: s.restart}}
	return cfg, hc
}

func rkeLabel(n string) map[string]string {
	return map[string]string{"io.rancher.rke.container.name": n}
}

// pod labels as dockershim sets them.
func podLabels(pod, ns, uid, ctr string) map[string]string {
	typ := "container"
	if ctr == "POD" {
		typ = "podsandbox"
	}
	return map[string]string{"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": ns,
		"io.kubernetes.pod.uid": uid, "io.kubernetes.container.name": ctr, "io.kubernetes.docker.type": typ}
}

func shim(ctr, pod, ns, uid string, attempt int) string {
	return fmt.Sprintf("k8s_%s_%s_%s_%s_%d", ctr, pod, ns, uid, attempt)
}

// Images of the docker feature: one busybox layer under every name.
const (
	imgHyperkube = "rancher/hyperkube:v1.20.15-rancher1"
	imgTools     = "rancher/rke-tools:v0.1.80"
	imgEtcd      = "rancher/mirrored-coreos-etcd:v3.4.16-rancher1"
	imgAgent     = "rancher/rancher-agent:v2.6.9"
	imgPause     = "rancher/mirrored-pause:3.6"
	imgCanal     = "rancher/mirrored-calico-node:v3.21.1"
	imgServer    = "rancher/rancher:v2.6.9"
	imgNginx     = "nginx:1.25"
	imgKind      = "kindest/node:v1.29.2"
	imgBusybox   = "busybox:1.36"
)

// dockerSpecs is an RKE1 all-roles node (etcd, control plane, worker)
// registered by a Rancher agent, with kubelet pods, and the user's
// containers beside them.
func dockerSpecs() []dockerSpec {
	const canal, web, ingress = "0c5f2a9e-3b1d-4c6e-8f7a-1d2e3f4a5b6c", "7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8", "5b2c9d1e0f3a4b6c8d7e9f0a1b2c3d4e"
	always := container.RestartPolicyAlways
	return []dockerSpec{
		// RKE's system containers, by name and label as RKE creates them.
		{name: "service-sidekick", image: imgTools, labels: rkeLabel("service-sidekick"), net: "none", created: true, early: true, anon: []string{"/opt/rke-tools"}},
		{name: "etcd", image: imgEtcd, labels: rkeLabel("etcd"), net: "host", restart: always},
		{name: "kube-apiserver", image: imgHyperkube, labels: rkeLabel("kube-apiserver"), net: "host", restart: always, volumesFrom: []string{"service-sidekick"}},
		{name: "kube-controller-manager", image: imgHyperkube, labels: rkeLabel("kube-controller-manager"), net: "host", restart: always},
		{name: "kube-scheduler", image: imgHyperkube, labels: rkeLabel("kube-scheduler"), net: "host", restart: always},
		{name: "kubelet", image: imgHyperkube, labels: rkeLabel("kubelet"), net: "host", restart: always},
		{name: "kube-proxy", image: imgHyperkube, labels: rkeLabel("kube-proxy"), net: "host", restart: always},
		{name: "share-mnt", image: imgAgent, labels: rkeLabel("share-mnt"), net: "host"},
		{name: "old-kube-proxy", image: imgHyperkube, labels: rkeLabel("kube-proxy"), net: "none", created: true},
		// From before RKE labelled its containers: exact name and RKE image.
		{name: "rke-log-linker", image: imgTools, net: "none", created: true},
		// The agent `docker run` started at registration: a random name.
		{name: "festive_hopper", image: imgAgent, net: "host", restart: container.RestartPolicyUnlessStopped},

		// Kubelet pods through dockershim: a host-network DaemonSet pod, a
		// pod-network pod with an old attempt, a container known by name only
		// and one known by labels only.
		{name: shim("POD", "canal-x7k2p", "kube-system", canal, 0), image: imgPause, labels: podLabels("canal-x7k2p", "kube-system", canal, "POD"), net: "host", sandbox: true},
		{name: shim("calico-node", "canal-x7k2p", "kube-system", canal, 0), image: imgCanal, labels: podLabels("canal-x7k2p", "kube-system", canal, "calico-node"), net: "pod:" + shim("POD", "canal-x7k2p", "kube-system", canal, 0)},
		{name: shim("kube-flannel", "canal-x7k2p", "kube-system", canal, 0), image: imgCanal, labels: podLabels("canal-x7k2p", "kube-system", canal, "kube-flannel"), net: "pod:" + shim("POD", "canal-x7k2p", "kube-system", canal, 0)},
		{name: shim("POD", "web-5d9c7b8f6-abcde", "default", web, 0), image: imgPause, labels: podLabels("web-5d9c7b8f6-abcde", "default", web, "POD"), net: "none", sandbox: true},
		{name: shim("web", "web-5d9c7b8f6-abcde", "default", web, 1), image: imgBusybox, labels: podLabels("web-5d9c7b8f6-abcde", "default", web, "web"), net: "pod:" + shim("POD", "web-5d9c7b8f6-abcde", "default", web, 0), anon: []string{"/cache"}},
		{name: shim("web", "web-5d9c7b8f6-abcde", "default", web, 0), image: imgBusybox, labels: podLabels("web-5d9c7b8f6-abcde", "default", web, "web"), net: "none", created: true},
		{name: shim("controller", "nginx-ingress-controller-2xkq9", "ingress-nginx", ingress, 0), image: imgNginx, net: "none"},
		{name: "debug-copy", image: imgBusybox, labels: podLabels("web-5d9c7b8f6-abcde", "default", web, "debug"), net: "none"},

		// The user's: must survive.
		{name: "webapp", image: imgBusybox, net: "none", binds: []string{"webdata:/data"}, restart: container.RestartPolicyUnlessStopped, decoy: true},
		{name: "rancher", image: imgServer, net: "none", restart: container.RestartPolicyUnlessStopped, decoy: true},
		{name: "nginx-proxy", image: imgNginx, net: "none", decoy: true},                      // RKE's name, not RKE's image or label
		{name: "my-etcd", image: imgEtcd, labels: rkeLabel("etcd"), net: "none", decoy: true}, // RKE's label, another name
		{name: "k8s_notes", image: imgBusybox, net: "none", decoy: true},                      // not the dockershim form
		{name: "k8s_web_web_default_notauid_0", image: imgBusybox, net: "none", decoy: true},  // nor this (UID)
		{name: "kind-control-plane", image: imgKind, labels: map[string]string{"io.x-k8s.kind.cluster": "kind", "io.kubernetes.pod.name": "x"}, net: "none", decoy: true},
	}
}

// plantDocker imports the image, creates the decoy volume and starts
// every container.
func plantDocker(ctx context.Context, b *builder, c *client.Client, busybox string) error {
	layer, err := busyboxLayer(busybox)
	if err != nil {
		return err
	}
	r, err := c.ImageImport(ctx, client.ImageImportSource{Source: layer, SourceName: "-"}, imgBusybox, client.ImageImportOptions{})
	if err != nil {
		return fmt.Errorf("import busybox image: %w", err)
	}
	_, err = io.Copy(io.Discard, r)
	r.Close()
	if err != nil {
		return fmt.Errorf("import busybox image: %w", err)
	}
	for _, ref := range []string{imgHyperkube, imgTools, imgEtcd, imgAgent, imgPause, imgCanal, imgServer, imgNginx, imgKind} {
		if _, err := c.ImageTag(ctx, client.ImageTagOptions{Source: imgBusybox, Target: ref}); err != nil {
			return fmt.Errorf("tag %s: %w", ref, err)
		}
	}
	if _, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "webdata", Labels: map[string]string{decoyLabel: "true"}}); err != nil {
		return fmt.Errorf("create decoy volume: %w", err)
	}
	specs := dockerSpecs()
	if _, err := startAll(ctx, c, specs); err != nil {
		return err
	}
	expectDocker(b, specs)
	return nil
}

// startAll creates and starts containers, a few at a time; dockerd
// serializes little, so this is what keeps the sandbox quick to plant.
func startAll(ctx context.Context, c *client.Client, specs []dockerSpec) (map[string]string, error) {
	ids := map[string]string{}
	var mu sync.Mutex
	var first error
	// Sandboxes first, their pods' containers join their network by ID;
	// and the sidekick, whose volumes RKE's control plane takes.
	for _, pass := range []bool{true, false} {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 6)
		for _, s := range specs {
			if (s.sandbox || s.early) != pass {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				mu.Lock()
				cfg, hc := s.config(ids)
				mu.Unlock()
				id, err := runContainer(ctx, c, s, cfg, hc)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && first == nil {
					first = fmt.Errorf("container %s: %w", s.name, err)
				}
				ids[s.name] = id
			})
		}
		wg.Wait()
	}
	return ids, first
}

func runContainer(ctx context.Context, c *client.Client, s dockerSpec, cfg *container.Config, hc *container.HostConfig) (string, error) {
	r, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: s.name, Config: cfg, HostConfig: hc})
	if err != nil {
		return "", err
	}
	if s.created {
		return r.ID, nil
	}
	_, err = c.ContainerStart(ctx, r.ID, client.ContainerStartOptions{})
	return r.ID, err
}

// expectDocker records the containers nodereset must plan.
func expectDocker(b *builder, specs []dockerSpec) {
	for _, s := range specs {
		if !s.decoy {
			b.expect(plan.KindContainer, "docker:"+s.name) // docker.Target's format
		}
	}
}
