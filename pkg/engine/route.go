package engine

import (
	"slices"

	"github.com/nodereset/nodereset/pkg/plan"
)

// kindsOf lists the plan kinds k produces and consumes, Kind() always
// among them.
func kindsOf(k Kind) []plan.Kind {
	own := []plan.Kind{k.Kind()}
	if m, ok := k.(MultiKind); ok {
		for _, pk := range m.Kinds() {
			if !slices.Contains(own, pk) {
				own = append(own, pk)
			}
		}
	}
	return own
}

// route splits a phase's items by the kind that discovered them. An item
// without Via (a plan read back from JSON) or whose Via names a kind that
// does not claim it goes to the phase's first kind claiming its Kind;
// items no kind claims are returned apart.
func route(ph Phase, items []plan.Item) (byKind [][]plan.Item, orphans []plan.Item) {
	claimed := make([][]plan.Kind, len(ph.Kinds))
	for n, k := range ph.Kinds {
		claimed[n] = kindsOf(k)
	}
	out := make([][]plan.Item, len(ph.Kinds))
	for _, it := range items {
		j := it.Via - 1
		if j < 0 || j >= len(ph.Kinds) || !slices.Contains(claimed[j], it.Kind) {
			j = slices.IndexFunc(claimed, func(ks []plan.Kind) bool { return slices.Contains(ks, it.Kind) })
		}
		if j < 0 {
			orphans = append(orphans, it)
			continue
		}
		out[j] = append(out[j], it)
	}
	return out, orphans
}
