// Package plan holds the value that every nodereset command is built on: the
// list of Kubernetes-owned things found on a host, grouped into phases in the
// order they will be changed. A plan changes nothing by itself; the engine
// applies it once.
package plan

import "time"

// Kind names one kind of host state. The names are part of the JSON interface
// other tools rely on; never rename one.
type Kind string

// The kinds known today. Containers and network kinds come later and only add
// names here.
const (
	KindService   Kind = "service"
	KindProcess   Kind = "process"
	KindStaticPod Kind = "static-pod"
	KindMount     Kind = "mount"
	KindPath      Kind = "path"
	KindPod       Kind = "pod"
	KindContainer Kind = "container"
	KindNetns     Kind = "netns"
	KindLink      Kind = "link"
	KindChain     Kind = "iptables-chain"
	KindRule      Kind = "iptables-rule"
	KindNftTable  Kind = "nft-table"
	KindIPVS      Kind = "ipvs-service"
	KindIPSet     Kind = "ipset"
	KindCNIFile   Kind = "cni-file"
	KindImage     Kind = "image"
	KindConntrack Kind = "conntrack"
)

// Action says what applying an item does to its target.
type Action string

// Actions used by the core kinds.
const (
	ActionStopDisable Action = "stop-disable"
	// ActionStop stops a unit and leaves its enablement alone.
	ActionStop    Action = "stop"
	ActionKill    Action = "kill"
	ActionUnmount Action = "unmount"
	ActionRemove  Action = "remove"
	// ActionBackupRemove moves the target into the run's backup directory.
	ActionBackupRemove Action = "backup-remove"
	// ActionEmpty removes what a directory holds and keeps the directory.
	ActionEmpty Action = "empty"
	// ActionBackupEmpty moves what a directory holds into the backup directory.
	ActionBackupEmpty Action = "backup-empty"
)

// Item is one thing on the host that a kind owns and will change.
type Item struct {
	Kind Kind `json:"kind"`
	// Target is the host-side name: a path without the --host-root prefix, a
	// unit name, a PID.
	Target string `json:"target"`
	Action Action `json:"action"`
	// Reason says why the item is considered Kubernetes-owned.
	Reason string `json:"reason"`
	// Detail is the kind's own typed data (mount IDs, PID start time...). The
	// kind that produced the item is the only reader.
	Detail any `json:"detail,omitempty"`
	// Via is set by the engine: which of its phase's kinds discovered the
	// item (1-based), so that two kinds producing one Kind (CRI and Docker
	// containers) each apply only their own items.
	Via int `json:"-"`
	// Instance is the Detail's Key (see Keyer), kept by the engine so that
	// items with one target stay apart in a plan read back from JSON,
	// where Detail is no longer the kind's type.
	Instance string `json:"instance,omitempty"`
}

// Keyer is implemented by a Detail that tells apart items with one target,
// such as two mounts stacked on one mount point.
type Keyer interface{ Key() string }

// Key identifies an item within a plan.
func (i Item) Key() string {
	k := string(i.Kind) + " " + i.Target
	if d, ok := i.Detail.(Keyer); ok {
		k += " #" + d.Key()
	} else if i.Instance != "" {
		k += " #" + i.Instance
	}
	return k
}

// Phase is a named, ordered step of a plan.
type Phase struct {
	Name  string `json:"name"`
	Items []Item `json:"items"`
}

// Plan is what discovery found: the phases in the order they run.
type Plan struct {
	Host     string    `json:"host"`
	HostRoot string    `json:"hostRoot"`
	Created  time.Time `json:"created"`
	Phases   []Phase   `json:"phases"`
	// Profiles names the distribution profiles the plan was built for;
	// Evidence says what on the host made them apply.
	Profiles []string `json:"profiles,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
	// Warnings are things discovery noticed but will not change.
	Warnings []string `json:"warnings,omitempty"`
}

// Items returns every item of every phase, in order.
func (p *Plan) Items() []Item {
	var out []Item
	for _, ph := range p.Phases {
		out = append(out, ph.Items...)
	}
	return out
}

// Empty reports whether the plan would change nothing.
func (p *Plan) Empty() bool {
	for _, ph := range p.Phases {
		if len(ph.Items) > 0 {
			return false
		}
	}
	return true
}

// Status is the outcome of applying one item.
type Status string

// Outcomes of one item.
const (
	StatusDone   Status = "done"
	StatusFailed Status = "failed"
)

// Result is the recorded outcome of one item.
type Result struct {
	Item     Item          `json:"item"`
	Status   Status        `json:"status"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"durationNs"`
}
