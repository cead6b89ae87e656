// Package preflight holds verify's rejoin checks: what a join's preflight
// would trip on that re-discovery alone does not show, such as a port held
// by a process nodereset does not own.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/nodereset/nodereset/internal/procs"
	"github.com/nodereset/nodereset/pkg/engine"
)

// Ports fails for every port that something listens on.
type Ports []int

// Name implements engine.Check.
func (Ports) Name() string { return "ports free" }

// Run implements engine.Check.
func (p Ports) Run(_ context.Context, env *engine.Env) ([]string, error) {
	ls, err := procs.Listeners(env.Host.Proc(), p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		who := "no process (socket without owner)"
		if l.PID != 0 {
			who = fmt.Sprintf("pid %d (%s)", l.PID, l.Comm)
		}
		out = append(out, fmt.Sprintf("port %d is in use by %s", l.Port, who))
	}
	sort.Strings(out)
	return out, nil
}

// FilesAbsent fails for every host path that exists.
type FilesAbsent []string

// Name implements engine.Check.
func (FilesAbsent) Name() string { return "join files absent" }

// Run implements engine.Check.
func (f FilesAbsent) Run(_ context.Context, env *engine.Env) ([]string, error) {
	var out []string
	for _, p := range f {
		_, err := os.Lstat(env.Host.Path(p))
		switch {
		case err == nil:
			out = append(out, p+" exists")
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	return out, nil
}

// DirsEmpty fails for every host directory that holds something; a missing
// directory is fine.
type DirsEmpty []string

// Name implements engine.Check.
func (DirsEmpty) Name() string { return "manifest dirs empty" }

// Run implements engine.Check.
func (d DirsEmpty) Run(_ context.Context, env *engine.Env) ([]string, error) {
	var out []string
	for _, p := range d {
		ents, err := os.ReadDir(env.Host.Path(p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(ents) > 0 {
			out = append(out, fmt.Sprintf("%s is not empty (%d entries)", p, len(ents)))
		}
	}
	return out, nil
}
