package paths

import (
	"fmt"
	"strings"

	"github.com/nodereset/nodereset/internal/cri"
	"github.com/nodereset/nodereset/internal/mounts"
	"github.com/nodereset/nodereset/pkg/host"
)

// InUseError is a path the kind left alone because live processes work
// below it.
type InUseError struct {
	Path    string
	Holders []mounts.Holder
	// Runtimes are the holders that are container runtimes or their shims,
	// with sockets host-side. Their Kubernetes pods were not removed; the
	// advice is never to stop them, since they run other containers too.
	Runtimes []cri.RuntimeProcess
}

func (e *InUseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is in use by %s; ", e.Path, holderList(e.Holders))
	if len(e.Runtimes) == 0 {
		b.WriteString("stop it and run reset again (nothing was changed there)")
		return b.String()
	}
	rp := e.Runtimes[0]
	fmt.Fprintf(&b, "the container runtime %s (pid %d) still holds Kubernetes pods' files, so its pods were not removed: "+
		"do not stop it (it may run other containers); run reset again with --cri-socket ", rp.Name, rp.PID)
	if rp.Socket != "" {
		b.WriteString("unix://" + rp.Socket)
	} else {
		b.WriteString("naming its CRI socket")
	}
	if others := len(e.Holders) - len(e.Runtimes); others > 0 {
		b.WriteString(", after stopping the other processes")
	}
	b.WriteString(" (nothing was changed there)")
	return b.String()
}

// inUse returns the InUseError for holders of target, with the container
// runtimes among them.
func inUse(h *host.Host, target string, hs []mounts.Holder) *InUseError {
	e := &InUseError{Path: target, Holders: hs}
	for _, ho := range hs {
		rp, ok := cri.RuntimeOf(h.Proc(), ho.PID)
		if !ok {
			continue
		}
		// The socket as the runtime bound it: under the host root when
		// nodereset looks at the host from a container.
		if rel, err := h.Rel(rp.Socket); rp.Socket != "" && err == nil {
			rp.Socket = rel
		}
		e.Runtimes = append(e.Runtimes, rp)
	}
	return e
}

func holderList(hs []mounts.Holder) string {
	var b strings.Builder
	for i, h := range hs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(h.String())
	}
	return b.String()
}
