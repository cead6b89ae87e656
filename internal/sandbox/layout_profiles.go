package sandbox

import (
	"fmt"

	"github.com/nodereset/nodereset/pkg/plan"
)

// Helpers shared by the distribution layouts (layout_<profile>.go): the
// host's own files, pod volumes under any kubelet root, and the decoys
// every non-kubeadm node carries.

// layoutHostBasics plants the host's own files and units without any
// kubeadm part (layoutSystem plants kubeadm's kubelet unit).
func layoutHostBasics(b *builder) {
	b.decoyFile("/etc/hostname", nodeName+"\n")
	for _, d := range []string{"/tmp", "/root", "/var/tmp", "/etc/default"} {
		b.dir(d)
	}
	wants := b.unit("/lib/systemd/system/ssh.service", sshUnit)
	b.m.Decoys.Files = append(b.m.Decoys.Files, decoyDigest("/lib/systemd/system/ssh.service", sshUnit))
	b.m.Decoys.Units = append(b.m.Decoys.Units, DecoyUnit{Symlink: wants, Target: "/lib/systemd/system/ssh.service"})
	b.decoyFile("/home/user/notes.txt", "remember: the cluster is gone, the notes are not\n")
	b.decoyFile("/home/user/important/data.bin", pseudoRandom("data.bin", 8192))
	b.decoyFile("/etc/cni/net.d/87-podman-bridge.conflist", podmanConflist)
}

// layoutRancherDecoys plants what lives under /var/lib/rancher without
// being any distribution's: a user's directory and a RancherOS-style
// Docker data dir.
func layoutRancherDecoys(b *builder) {
	b.decoyFile("/var/lib/rancher/foo/data.txt", "not Kubernetes: the operator's own rancher-named data\n")
	b.decoyFile("/var/lib/rancher/docker/image/overlay2/repositories.json", `{"Repositories":{}}`+"\n")
	b.decoyFile("/var/lib/rancher/docker/volumes/db/_data/rows.db", pseudoRandom("rancheros-volume", 2048))
}

// layoutKubeletPods plants the kubelet's per-pod state under root: a
// secret tmpfs and a projected token per pod, a CSI bind of user data, and
// pod logs.
func layoutKubeletPods(b *builder, root string, pods int) {
	for i := 0; i < pods; i++ {
		uid := podUID(i)
		vols := root + "/pods/" + uid + "/volumes/"
		sec := fmt.Sprintf("%skubernetes.io~secret/secret-%d", vols, i)
		b.tmpfs(sec)
		b.file(sec+"/token", "fake-secret-"+uid, 0o600)
		b.expect(plan.KindMount, sec)
		src := "/srv/pv/pvc-" + uid
		b.decoyFile(src+"/data.txt", "persistent data of "+uid+"\n")
		csi := vols + "kubernetes.io~csi/pvc-" + uid + "/mount"
		b.bind(src, csi)
		b.expect(plan.KindMount, csi)
		podLogs(b, i, uid)
	}
	b.file(root+"/cpu_manager_state", `{"policyName":"none"}`, 0o644)
	b.expect(plan.KindPath, root)
	if pods > 0 {
		b.expect(plan.KindPath, "/var/log/pods")
		b.expect(plan.KindPath, "/var/log/containers")
	}
}

// profileProcSpecs are the component processes of a layout. kubeadm and
// kubespray keep procSpecs(); startProcesses needs to take these (see the
// report on the hook).
func profileProcSpecs(profile string) []procSpec {
	decoys := []procSpec{
		{decoy: true, exe: "/usr/sbin/webd", ports: []int{80}, argv: []string{"webd", "--port=80"}},
		{decoy: true, exe: "/home/user/bin/kubelet", ports: []int{18250}, argv: []string{"/home/user/bin/kubelet", "--port=18250"}},
	}
	switch profile {
	case "k3s":
		return append(k3sProcs(k3sDefault), decoys...)
	case "k3s-custom":
		return append(k3sProcs(k3sCustom), decoys...)
	case "rke2":
		return append(rke2Procs(), decoys...)
	case "rancher":
		return append(append(rke2Procs(), procSpec{exe: "/usr/local/bin/rancher-system-agent",
			argv: []string{"rancher-system-agent", "sentinel"}}), decoys...)
	case "rke1":
		return append(rke1Procs(), decoys...)
	}
	return procSpecs()
}
