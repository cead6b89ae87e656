// Package engine turns kinds of host state into a plan, applies a plan with a
// journal, and verifies a host. It knows nothing about any particular kind:
// a new kind plugs in by implementing Kind and being listed in a Phase.
package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Env is what every kind gets to work with.
type Env struct {
	Host *host.Host
	Log  *slog.Logger
	// BackupDir is this run's backup directory as nodereset sees it (under
	// the host root), or "" when backups are off or nothing is applied.
	BackupDir string
}

// Kind discovers and removes one kind of host state.
type Kind interface {
	// Kind names the items this kind produces and consumes (a MultiKind
	// has more).
	Kind() plan.Kind
	// Discover reads the host and returns the items this kind would change.
	// It changes nothing. An empty result means the host is clean of it.
	Discover(ctx context.Context, env *Env) ([]plan.Item, error)
	// Apply changes the host for the given items, which Discover produced,
	// in the order and with the parallelism the kind needs, and reports
	// every item to rec exactly once through Done.
	Apply(ctx context.Context, env *Env, items []plan.Item, rec Recorder)
}

// MultiKind is implemented by a kind whose items come in several plan
// kinds that must be changed together, so that its Apply sees its whole
// share of the phase at once: the firewall removes a rule and the chain it
// jumps to in one iptables-restore batch, and with one Kind per item kind
// each half would see only its own items. The engine routes every item of
// any of Kinds to it (Item.Via, or the phase's first kind claiming the
// item's Kind); an item of another kind from its Discover is a bug
// (ErrUnclaimedItem).
type MultiKind interface {
	Kind
	// Kinds lists every plan kind Discover produces and Apply consumes;
	// Kind() (which names the kind in logs and errors) counts whether
	// listed or not.
	Kinds() []plan.Kind
}

// Snapshotter is implemented by a kind whose backup must show the host as
// it was before the run changed anything, not as it is when the kind's own
// phase comes: the firewall, whose rules the runtime's CNI DEL changes while
// pods are removed, phases earlier. Apply calls Snapshot once the run
// directory exists (env.BackupDir is set unless backups are off) and before
// the first phase, with the whole plan so that a kind with nothing to do can
// skip it; an error stops the run before anything changes. A resumed run
// calls it again: the kind keeps the first run's snapshot.
type Snapshotter interface {
	Snapshot(ctx context.Context, env *Env, p *plan.Plan) error
}

// Warner is implemented by a kind that has something to say in the plan
// beyond its items (an opt-in that widens what it removes, say).
type Warner interface {
	Warnings() []string
}

// Recorder receives the outcome of each item as a kind applies it. It is
// safe for concurrent use.
type Recorder interface {
	// Start is called before the item's change begins (it is journalled, so
	// a crashed run shows what was in flight).
	Start(item plan.Item)
	// Done records the outcome: err == nil means the item is gone.
	Done(item plan.Item, err error)
}

// Phase is a named step: its kinds are discovered together and applied in
// the listed order.
type Phase struct {
	Name  string
	Kinds []Kind
}

// Check is a rejoin check run by verify in addition to re-discovery: things
// a join's preflight would trip on that are not items nodereset removes
// (a port held by a foreign process, say).
type Check interface {
	Name() string
	// Run returns the problems found; an error means it could not check.
	Run(ctx context.Context, env *Env) ([]string, error)
}

// Observer is told about progress; the CLI's printer implements it. The
// engine never prints.
type Observer interface {
	PhaseStart(name string, items int)
	ItemDone(r plan.Result)
	PhaseEnd(name string)
}

// ApplyEach applies items one after another with fn, for kinds whose items
// are independent and cheap; once ctx is done the rest fail unstarted.
func ApplyEach(ctx context.Context, items []plan.Item, rec Recorder, fn func(plan.Item) error) {
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			rec.Done(it, fmt.Errorf("not started: %w", err))
			continue
		}
		rec.Start(it)
		rec.Done(it, fn(it))
	}
}
