package sandbox

import (
	"fmt"
	"strings"

	"github.com/nodereset/nodereset/pkg/plan"
)

// buildLayout plants the whole node under b.root (a fresh tmpfs) except the
// processes. The order matters only where mounts stack.
func buildLayout(b *builder, pods, volumes int) {
	layoutSystem(b)
	layoutKubernetes(b)
	layoutPods(b, pods, volumes)
	layoutUserMounts(b)
	for _, p := range []string{"/etc/kubernetes", "/var/lib/etcd", "/var/lib/kubelet",
		"/var/log/pods", "/var/log/containers", "/run/kubernetes"} {
		b.expect(plan.KindPath, p)
	}
}

// layoutSystem plants the host's own files, units and user data.
func layoutSystem(b *builder) {
	b.decoyFile("/etc/hostname", nodeName+"\n")
	for _, d := range []string{"/tmp", "/root", "/var/tmp", "/etc/default"} {
		b.dir(d)
	}

	// The kubelet package's unit stays enabled, as kubeadm reset leaves
	// it (kubeadm join expects it): with no systemd running here there is
	// nothing to stop, so it is not planned at all.
	kubeletWants := b.unit("/lib/systemd/system/kubelet.service", kubeletUnit)
	b.m.Decoys.Units = append(b.m.Decoys.Units, DecoyUnit{Symlink: kubeletWants, Target: "/lib/systemd/system/kubelet.service"})
	b.file("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", kubeadmDropIn, 0o644)
	b.file("/var/lib/dpkg/info/kubelet.list", "/.\n/lib\n/lib/systemd\n/lib/systemd/system\n"+
		"/lib/systemd/system/kubelet.service\n/usr\n/usr/bin\n/usr/bin/kubelet\n", 0o644)
	b.unit("/etc/systemd/system/etcd.service", etcdUnit)
	b.expect(plan.KindService, "etcd.service")

	for _, u := range []struct{ file, content string }{
		{"/lib/systemd/system/ssh.service", sshUnit},
		{"/etc/systemd/system/kube-watch.service", kubeWatchUnit},
	} {
		wants := b.unit(u.file, u.content)
		b.m.Decoys.Files = append(b.m.Decoys.Files, decoyDigest(u.file, u.content))
		b.m.Decoys.Units = append(b.m.Decoys.Units, DecoyUnit{Symlink: wants, Target: u.file})
	}

	b.decoyFile("/home/user/notes.txt", "remember: the cluster is gone, the notes are not\n")
	b.decoyFile("/home/user/important/data.bin", pseudoRandom("data.bin", 8192))
	b.decoyLink("/home/user/latest", "important/data.bin")
	b.decoyFile("/etc/cni/net.d/87-podman-bridge.conflist", podmanConflist)
}

// layoutKubernetes plants what kubeadm, the kubelet and etcd write.
func layoutKubernetes(b *builder) {
	for _, c := range []string{"admin", "super-admin", "kubelet", "controller-manager", "scheduler"} {
		b.file("/etc/kubernetes/"+c+".conf", kubeconfig(c), 0o600)
	}
	for _, name := range []string{"ca", "apiserver", "front-proxy-ca", "etcd/ca"} {
		b.file("/etc/kubernetes/pki/"+name+".crt", fakePEM("CERTIFICATE", name), 0o644)
	}
	for _, name := range []string{"ca", "apiserver", "sa", "etcd/ca"} {
		b.file("/etc/kubernetes/pki/"+name+".key", fakePEM("RSA PRIVATE KEY", name), 0o600)
	}
	b.file("/etc/kubernetes/pki/sa.pub", fakePEM("PUBLIC KEY", "sa"), 0o644)
	for _, name := range []string{"etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"} {
		p := "/etc/kubernetes/manifests/" + name
		b.file(p, staticPods()[name], 0o600)
		b.expect(plan.KindStaticPod, p)
	}

	b.file("/var/lib/kubelet/config.yaml", kubeletConfig, 0o644)
	b.file("/var/lib/kubelet/kubeadm-flags.env", kubeadmFlags, 0o644)
	b.file("/var/lib/kubelet/pki/kubelet-client-current.pem",
		fakePEM("CERTIFICATE", "kubelet-client")+fakePEM("EC PRIVATE KEY", "kubelet-client"), 0o600)
	b.dir("/var/lib/kubelet/plugins_registry")
	b.dir("/var/lib/kubelet/pod-resources")
	// A user's symlink inside an owned directory: removing the directory
	// must remove the link, never what it points at.
	b.link("/var/lib/kubelet/userlink", "../../home/user")

	b.file("/var/lib/etcd/member/snap/db", pseudoRandom("etcd-db", 16384), 0o600)
	b.file("/var/lib/etcd/member/wal/0.wal", pseudoRandom("etcd-wal", 4096), 0o600)
	b.file("/run/kubernetes/apiserver.crt", fakePEM("CERTIFICATE", "apiserver-selfsigned"), 0o644)
	b.dir("/var/log/containers")
	b.link("/var/log/containers/user.log", "/home/user/notes.txt")
}

// layoutUserMounts plants mounts that look like kubelet's but are not.
func layoutUserMounts(b *builder) {
	// Shares the /var/lib/kubelet prefix as a string, not as a path.
	b.tmpfs("/var/lib/kubelet-old")
	b.decoyFile("/var/lib/kubelet-old/README", "the previous kubelet's data, kept on purpose\n")
	b.m.Decoys.Mounts = append(b.m.Decoys.Mounts, DecoyMount{Point: "/var/lib/kubelet-old"})

	b.decoyFile("/srv/userdata/db.sqlite", pseudoRandom("userdata", 4096))
	b.bind("/srv/userdata", "/mnt/data")
	b.m.Decoys.Mounts = append(b.m.Decoys.Mounts, DecoyMount{Point: "/mnt/data"})
}

// podUID is a fixed-format UUID for pod i (kubelet names pod dirs by UID).
func podUID(i int) string {
	return fmt.Sprintf("5b1d%04x-%04x-4000-8000-%012x", i, i, i)
}

func podNamespace(i int) string {
	return []string{"default", "kube-system", "monitoring"}[i%3]
}

// pseudoRandom returns n deterministic bytes derived from seed.
func pseudoRandom(seed string, n int) string {
	var s strings.Builder
	sum := digest([]byte(seed))
	for s.Len() < n {
		s.WriteString(sum)
		sum = digest([]byte(sum))
	}
	return s.String()[:n]
}
