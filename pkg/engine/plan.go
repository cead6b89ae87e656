package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nodereset/nodereset/pkg/plan"
)

// DiscoverError says which kind could not read the host.
type DiscoverError struct {
	Kind plan.Kind
	Err  error
}

func (e *DiscoverError) Error() string {
	return fmt.Sprintf("discover %s: %v", e.Kind, e.Err)
}

func (e *DiscoverError) Unwrap() error { return e.Err }

// ErrUnclaimedItem marks an item a kind discovered although it is not of
// its Kind (nor of its Kinds, for a MultiKind): a bug in the kind. The item
// is left out of the plan, and the plan comes with an error.
var ErrUnclaimedItem = errors.New("discovered an item of a kind it does not handle (a bug in nodereset)")

// Plan discovers every kind of every phase, concurrently, and returns the
// plan. It changes nothing. When some kind fails, the plan holds what the
// others found and the error joins one *DiscoverError per failed kind: a
// caller must not apply a plan that came with an error, because what it does
// not list was not looked at.
func Plan(ctx context.Context, env *Env, phases []Phase) (*plan.Plan, error) {
	type found struct {
		items []plan.Item
		err   error
	}
	results := make([][]found, len(phases))
	var wg sync.WaitGroup
	for i, ph := range phases {
		results[i] = make([]found, len(ph.Kinds))
		for j, k := range ph.Kinds {
			wg.Go(func() {
				start := time.Now()
				items, err := k.Discover(ctx, env)
				env.Log.Debug("discovered", "kind", k.Kind(), "items", len(items), "took", time.Since(start), "err", err)
				results[i][j] = found{items, err}
			})
		}
	}
	wg.Wait()

	p := &plan.Plan{HostRoot: env.Host.Root(), Created: time.Now().UTC()}
	var errs []error
	for i, ph := range phases {
		out := plan.Phase{Name: ph.Name, Items: []plan.Item{}}
		for j, k := range ph.Kinds {
			r := results[i][j]
			if r.err != nil {
				errs = append(errs, &DiscoverError{Kind: k.Kind(), Err: r.err})
			}
			if w, ok := k.(Warner); ok {
				p.Warnings = append(p.Warnings, w.Warnings()...)
			}
			mine := kindsOf(k)
			for _, it := range r.items {
				if !slices.Contains(mine, it.Kind) {
					// Apply would hand it to another kind, or to none.
					errs = append(errs, &DiscoverError{Kind: k.Kind(), Err: fmt.Errorf("%s %s: %w", it.Kind, it.Target, ErrUnclaimedItem)})
					continue
				}
				it.Via = j + 1
				if d, ok := it.Detail.(plan.Keyer); ok {
					it.Instance = d.Key()
				}
				out.Items = append(out.Items, it)
			}
		}
		p.Phases = append(p.Phases, out)
	}
	return p, errors.Join(errs...)
}
