package sandbox

import (
	"fmt"

	"github.com/nodereset/nodereset/pkg/plan"
)

// layoutPods plants the kubelet's per-pod state: volume mounts, pod logs and
// the CSI data behind them. Volume j of a pod is a secret (tmpfs), a
// projected service-account token (tmpfs) or a CSI volume (a bind mount of
// user data under /srv/pv that must survive), in turn.
func layoutPods(b *builder, pods, volumes int) {
	for i := 0; i < pods; i++ {
		uid := podUID(i)
		dir := "/var/lib/kubelet/pods/" + uid
		b.file(dir+"/etc-hosts", "127.0.0.1 localhost\n", 0o644)
		b.dir(dir + "/containers/app")
		b.dir(dir + "/plugins/kubernetes.io~empty-dir/cache")
		vols := dir + "/volumes/"
		for j := 0; j < volumes; j++ {
			switch j % 3 {
			case 0:
				p := fmt.Sprintf("%skubernetes.io~secret/secret-%d", vols, j)
				b.tmpfs(p)
				b.file(p+"/token", "fake-secret-"+uid, 0o600)
				b.expect(plan.KindMount, p)
			case 1:
				p := fmt.Sprintf("%skubernetes.io~projected/kube-api-access-%d", vols, j)
				b.tmpfs(p)
				b.file(p+"/token", "fake-sa-token-"+uid, 0o600)
				b.file(p+"/namespace", podNamespace(i), 0o644)
				b.expect(plan.KindMount, p)
			case 2:
				pvc := fmt.Sprintf("pvc-%d", j)
				src := fmt.Sprintf("/srv/pv/pvc-%s-%d", uid, j)
				b.decoyFile(src+"/data.txt", "persistent data of "+uid+" "+pvc+"\n")
				p := vols + "kubernetes.io~csi/" + pvc + "/mount"
				b.bind(src, p)
				b.file(vols+"kubernetes.io~csi/"+pvc+"/vol_data.json",
					`{"driverName":"hostpath.csi.k8s.io","volumeHandle":"`+src+`"}`, 0o644)
				b.expect(plan.KindMount, p)
			}
		}
		// emptyDir on disk: a directory, not a mount.
		b.file(vols+"kubernetes.io~empty-dir/cache/cache.dat", pseudoRandom(uid, 512), 0o644)
		podLogs(b, i, uid)
	}
	if pods > 0 {
		podZeroExtras(b, podUID(0))
	}
}

// podZeroExtras plants the mount shapes that trip naive unmounting: two
// mounts stacked on one point, a mount nested inside another, a CSI global
// mount, and a user's symlink inside an emptyDir.
func podZeroExtras(b *builder, uid string) {
	ed := "/var/lib/kubelet/pods/" + uid + "/volumes/kubernetes.io~empty-dir/"
	stacked := ed + "shm"
	b.tmpfs(stacked)
	b.tmpfs(stacked)
	b.expect(plan.KindMount, stacked)
	b.expect(plan.KindMount, stacked)

	outer, inner := ed+"outer", ed+"outer/inner"
	b.tmpfs(outer)
	b.tmpfs(inner)
	b.file(inner+"/scratch", "scratch\n", 0o644)
	b.expect(plan.KindMount, outer)
	b.expect(plan.KindMount, inner)

	b.link(ed+"cache/link", "/home/user/important")

	b.decoyFile("/srv/pv/pvc-global/data.txt", "data behind a CSI global mount\n")
	global := "/var/lib/kubelet/plugins/kubernetes.io/csi/pv/pvc-global/globalmount"
	b.bind("/srv/pv/pvc-global", global)
	b.expect(plan.KindMount, global)
}

// podLogs plants /var/log/pods/<ns>_<name>_<uid>/<ctr>/0.log and the
// /var/log/containers symlink the kubelet keeps for it.
func podLogs(b *builder, i int, uid string) {
	ns, name := podNamespace(i), fmt.Sprintf("app-%d", i)
	log := fmt.Sprintf("/var/log/pods/%s_%s_%s/app/0.log", ns, name, uid)
	b.file(log, "2024-01-01T00:00:00.000000000Z stdout F started "+name+"\n", 0o640)
	id := digest([]byte(uid + "/app"))
	b.link(fmt.Sprintf("/var/log/containers/%s_%s_app-%s.log", name, ns, id), log)
}
