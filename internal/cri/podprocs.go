package cri

import (
	"errors"

	"github.com/nodereset/nodereset/internal/procs"
	"github.com/nodereset/nodereset/pkg/engine"
)

// PodProcesses returns the processes serving the kubelet's pods on every
// endpoint, up or down: the k8s.io shims and everything below them. The
// netns kind plans a namespace used only by these, since the pods go first.
func (k *Pods) PodProcesses(env *engine.Env) (map[int]bool, error) {
	eps, err := k.r.endpoints(env.Host)
	errs := []error{err}
	proc := env.Host.Proc()
	pids, lerr := procs.ListPIDs(proc)
	if lerr != nil {
		return nil, errors.Join(err, lerr)
	}
	tree, _, terr := children(proc)
	if terr != nil {
		return nil, errors.Join(err, terr)
	}
	out := map[int]bool{}
	for _, ep := range eps {
		for _, pid := range pids {
			if _, ok := k.r.matchShim(env.Host, proc, pid, ep); ok {
				out[pid] = true
				for _, c := range descendants(tree, pid) {
					out[c] = true
				}
			}
		}
	}
	return out, errors.Join(errs...)
}
