package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nodereset/nodereset/pkg/plan"
)

// ApplyOptions say where a run keeps its journal and backups.
type ApplyOptions struct {
	// BackupRoot holds one directory per run (as nodereset sees it, under
	// the host root). The journal is always written there.
	BackupRoot string
	// Backup makes precious state move into the run directory; without it
	// the run directory holds only the journal.
	Backup   bool
	Observer Observer
	// Files are written into the run directory before anything changes
	// (the plan, the profile), so that a resumed run and a later verify
	// know what this run meant to do. A file a resumed run already has is
	// kept: it describes the run's start.
	Files map[string][]byte
}

// Report is what applying a plan did.
type Report struct {
	// RunDir is the run directory as nodereset sees it (under the host
	// root); HostRunDir is the same as a host path, what restore takes.
	RunDir     string `json:"runDir"`
	HostRunDir string `json:"hostRunDir"`
	// Resumed is set when the run went on in the directory of the last run,
	// which had not finished cleanly; ResumedBecause says how that one ended.
	Resumed        bool   `json:"resumed"`
	ResumedBecause string `json:"resumedBecause,omitempty"`
	// Interrupted is set when ctx ended the run before every item was done:
	// the host is half reset until reset runs again.
	Interrupted bool `json:"interrupted,omitempty"`
	// NotStarted counts the items of the phases an interrupt kept from
	// running; they have no result.
	NotStarted int           `json:"notStarted,omitempty"`
	Results    []plan.Result `json:"results"`
}

// Failed returns the results that did not succeed.
func (r *Report) Failed() []plan.Result {
	var out []plan.Result
	for _, res := range r.Results {
		if res.Status != plan.StatusDone {
			out = append(out, res)
		}
	}
	return out
}

// ItemError is the failure of one item.
type ItemError struct {
	Item plan.Item
	Err  error
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Item.Kind, e.Item.Target, e.Err)
}

func (e *ItemError) Unwrap() error { return e.Err }

// ErrNotReported marks an item a kind forgot to report: a bug in the kind,
// recorded as a failure so that it is never mistaken for success.
var ErrNotReported = errors.New("the kind did not report a result for this item")

// Apply applies p, which Plan built from the same phases, phase by phase.
// The directory of the last run is reused when that run did not finish
// cleanly (killed, interrupted, or with failed items), so that its backups
// and this run's stay together. Every Snapshotter saves its state before
// the first phase; when one fails, nothing is changed and the report is
// nil. Every item's outcome is journalled and returned; the error joins
// one *ItemError per failed item. Later phases run
// even when an earlier one had failures: each kind only ever touches its own
// items and the path kind never crosses a mount that is still there.
func Apply(ctx context.Context, env *Env, phases []Phase, p *plan.Plan, opts ApplyOptions) (*Report, error) {
	if len(p.Phases) != len(phases) {
		return nil, fmt.Errorf("plan has %d phases, engine has %d: the plan was built from other phases", len(p.Phases), len(phases))
	}
	runDir, last, err := runDirectory(opts.BackupRoot)
	if err != nil {
		return nil, err
	}
	j, err := openJournal(runDir)
	if err != nil {
		return nil, err
	}
	defer j.close()
	if err := j.write(Entry{Event: EventBegin}); err != nil {
		return nil, err
	}
	for name, b := range opts.Files {
		if err := writeNew(filepath.Join(runDir, name), b); err != nil {
			return nil, err
		}
	}

	runEnv := *env
	if opts.Backup {
		runEnv.BackupDir = runDir
	}
	if err := snapshot(ctx, &runEnv, phases, p); err != nil {
		_ = j.write(Entry{Event: EventEnd, Error: err.Error()})
		return nil, err
	}
	report := &Report{RunDir: runDir, Results: []plan.Result{}}
	if hp, err := env.Host.Rel(runDir); err == nil {
		report.HostRunDir = hp
	}
	if last != nil {
		report.Resumed, report.ResumedBecause = true, last.Why
	}
	var errs []error
	notStarted := 0 // items of the phases an interrupt kept from running
	for i, ph := range phases {
		if ctx.Err() != nil {
			for _, rest := range p.Phases[i:] {
				notStarted += len(rest.Items)
			}
			errs = append(errs, fmt.Errorf("stopped before phase %s, %d items not started: %w", ph.Name, notStarted, ctx.Err()))
			break
		}
		items := p.Phases[i].Items
		if opts.Observer != nil {
			opts.Observer.PhaseStart(ph.Name, len(items))
		}
		byKind, orphans := route(ph, items)
		for _, it := range orphans {
			e := &ItemError{Item: it, Err: fmt.Errorf("no kind of phase %q handles kind %q: the plan was built from other phases", ph.Name, it.Kind)}
			report.Results = append(report.Results, plan.Result{Item: it, Status: plan.StatusFailed, Error: e.Err.Error()})
			errs = append(errs, e)
		}
		for n, k := range ph.Kinds {
			mine := byKind[n]
			if len(mine) == 0 {
				continue
			}
			rec := newRecorder(j, opts.Observer)
			k.Apply(ctx, &runEnv, mine, rec)
			res, err := rec.finish(mine)
			report.Results = append(report.Results, res...)
			errs = append(errs, err)
		}
		if err := j.sync(); err != nil {
			errs = append(errs, err)
		}
		if opts.Observer != nil {
			opts.Observer.PhaseEnd(ph.Name)
		}
	}
	report.NotStarted = notStarted
	left := len(report.Failed()) + notStarted
	report.Interrupted = ctx.Err() != nil && left > 0
	var stopped error
	if report.Interrupted {
		stopped = ctx.Err()
	}
	errs = append(errs, j.write(Entry{Event: EventEnd, Error: endError(stopped, left)}))
	return report, errors.Join(errs...)
}

// snapshot lets every Snapshotter save its state, in phase order.
func snapshot(ctx context.Context, env *Env, phases []Phase, p *plan.Plan) error {
	for _, ph := range phases {
		for _, k := range ph.Kinds {
			s, ok := k.(Snapshotter)
			if !ok {
				continue
			}
			if err := s.Snapshot(ctx, env, p); err != nil {
				return fmt.Errorf("%s: the snapshot before the first phase failed, so nothing was changed: %w", k.Kind(), err)
			}
		}
	}
	return nil
}

// writeNew writes a file unless it exists, atomically.
func writeNew(path string, b []byte) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// runDirectory returns the directory of the last run when it did not
// finish cleanly (and that run), or a new one named by the current UTC time.
func runDirectory(root string) (string, *Unfinished, error) {
	if root == "" {
		return "", nil, errors.New("no backup directory: pass --backup-dir")
	}
	last, err := LastUnfinished(root)
	if err != nil {
		return "", nil, err
	}
	if last != nil {
		return last.Dir, last, nil
	}
	name := time.Now().UTC().Format("20060102T150405Z")
	dir := filepath.Join(root, name)
	for n := 1; ; n++ {
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			return dir, nil, nil
		}
		dir = filepath.Join(root, fmt.Sprintf("%s.%d", name, n))
	}
}

// recorder journals and collects the outcomes of one kind's items.
type recorder struct {
	j     *journal
	obs   Observer
	mu    sync.Mutex
	start map[string]time.Time
	done  map[string]plan.Result
	errs  map[string]error
}

func newRecorder(j *journal, obs Observer) *recorder {
	return &recorder{j: j, obs: obs, start: map[string]time.Time{}, done: map[string]plan.Result{}, errs: map[string]error{}}
}

func (r *recorder) Start(it plan.Item) {
	r.mu.Lock()
	r.start[it.Key()] = time.Now()
	r.mu.Unlock()
	// A journal that cannot be written is reported by finish via Done's
	// entry; the start line is only a hint for a post-mortem.
	_ = r.j.write(Entry{Event: EventStart, Kind: it.Kind, Target: it.Target, Action: it.Action})
}

func (r *recorder) Done(it plan.Item, err error) {
	res := plan.Result{Item: it, Status: plan.StatusDone}
	ev := Entry{Event: EventDone, Kind: it.Kind, Target: it.Target, Action: it.Action}
	if err != nil {
		res.Status, res.Error = plan.StatusFailed, err.Error()
		ev.Event, ev.Error = EventFailed, err.Error()
	}
	if jerr := r.j.write(ev); jerr != nil && err == nil {
		err = jerr
		res.Status, res.Error = plan.StatusFailed, jerr.Error()
	}
	r.mu.Lock()
	if t, ok := r.start[it.Key()]; ok {
		res.Duration = time.Since(t)
	}
	_, dup := r.done[it.Key()]
	if !dup {
		r.done[it.Key()] = res
		r.errs[it.Key()] = err
	}
	r.mu.Unlock()
	if !dup && r.obs != nil {
		r.obs.ItemDone(res)
	}
}

// finish returns the results in plan order, marking unreported items failed.
func (r *recorder) finish(items []plan.Item) ([]plan.Result, error) {
	var out []plan.Result
	var errs []error
	for _, it := range items {
		r.mu.Lock()
		_, ok := r.done[it.Key()]
		r.mu.Unlock()
		if !ok {
			r.Done(it, ErrNotReported)
		}
		r.mu.Lock()
		res, err := r.done[it.Key()], r.errs[it.Key()]
		r.mu.Unlock()
		out = append(out, res)
		if err != nil {
			errs = append(errs, &ItemError{Item: it, Err: err})
		}
	}
	return out, errors.Join(errs...)
}
