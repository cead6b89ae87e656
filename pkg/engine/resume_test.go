package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/pkg/plan"
)

// cancelKind cancels the run while it applies its first item, as Ctrl-C
// does; the rest of the items then fail unstarted.
type cancelKind struct {
	listKind
	cancel context.CancelFunc
	after  bool // cancel once every item is done
}

func (k *cancelKind) Apply(ctx context.Context, env *Env, items []plan.Item, rec Recorder) {
	if !k.after {
		k.cancel()
	}
	ApplyEach(ctx, items, rec, func(plan.Item) error { return nil })
	k.cancel()
}

// A run that did not finish cleanly is resumed in its directory by the next
// Apply, whatever stopped it; a run that finished cleanly stays closed.
func TestApplyResumesUnfinishedRun(t *testing.T) {
	tests := []struct {
		name string
		// first runs the first reset; it returns the run directory.
		first   func(t *testing.T, env *Env, root string) string
		resume  bool
		whyPart string
	}{
		{"killed", func(t *testing.T, _ *Env, root string) string {
			dir := filepath.Join(root, "20260101T000000Z")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, JournalName), []byte(`{"event":"begin"}`+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}, true, "killed"},
		{"interrupted", func(t *testing.T, env *Env, root string) string {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			k := &cancelKind{listKind: listKind{kind: "k", items: []string{"x", "y"}}, cancel: cancel}
			phases := []Phase{{"one", []Kind{k}}, {"two", []Kind{&listKind{kind: "l", items: []string{"z"}}}}}
			rep := apply(ctx, t, env, phases, root)
			if !rep.Interrupted {
				t.Errorf("a cancelled run is not marked interrupted: %+v", rep)
			}
			return rep.RunDir
		}, true, "interrupted"},
		{"interrupted between phases", func(t *testing.T, env *Env, root string) string {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Its only item is done before the cancel takes effect.
			k := &cancelKind{listKind: listKind{kind: "k", items: []string{"x"}}, cancel: cancel, after: true}
			phases := []Phase{{"one", []Kind{k}}, {"two", []Kind{&listKind{kind: "l", items: []string{"z"}}}}}
			rep := apply(ctx, t, env, phases, root)
			if !rep.Interrupted || len(rep.Failed()) != 0 || rep.NotStarted != 1 {
				t.Errorf("a run stopped before its second phase is not marked interrupted with 1 item not started: %+v", rep)
			}
			return rep.RunDir
		}, true, "interrupted"},
		{"items failed", func(t *testing.T, env *Env, root string) string {
			k := &listKind{kind: "k", items: []string{"x"}, fail: map[string]bool{"x": true}}
			rep := apply(context.Background(), t, env, []Phase{{"one", []Kind{k}}}, root)
			if rep.Interrupted {
				t.Errorf("a run with a failed item is marked interrupted")
			}
			return rep.RunDir
		}, true, "1 items failed"},
		{"finished cleanly", func(t *testing.T, env *Env, root string) string {
			return apply(context.Background(), t, env, []Phase{{"one", []Kind{&listKind{kind: "k", items: []string{"x"}}}}}, root).RunDir
		}, false, ""},
		{"finished cleanly, older journal", func(t *testing.T, _ *Env, root string) string {
			dir := filepath.Join(root, "20260101T000000Z")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			j := `{"event":"begin"}` + "\n" + `{"event":"end","error":"0 failed"}` + "\n"
			if err := os.WriteFile(filepath.Join(dir, JournalName), []byte(j), 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t)
			root := filepath.Join(env.Host.Root(), "var/lib/nodereset/backups")
			first := tc.first(t, env, root)
			rep := apply(context.Background(), t, env, []Phase{{"one", []Kind{&listKind{kind: "k", items: []string{"x"}}}}}, root)
			if rep.Resumed != tc.resume || (rep.RunDir == first) != tc.resume {
				t.Fatalf("resumed=%v in %s after a first run in %s; want resumed=%v", rep.Resumed, rep.RunDir, first, tc.resume)
			}
			if !strings.Contains(rep.ResumedBecause, tc.whyPart) || (tc.whyPart == "") != (rep.ResumedBecause == "") {
				t.Errorf("resumed because %q, want it to say %q", rep.ResumedBecause, tc.whyPart)
			}
			if want := "/var/lib/nodereset/backups/" + filepath.Base(rep.RunDir); rep.HostRunDir != want {
				t.Errorf("host run dir %q, want %q", rep.HostRunDir, want)
			}
			// The second run finished cleanly: a third starts anew.
			if third := apply(context.Background(), t, env, nil, root); third.Resumed || third.RunDir == rep.RunDir {
				t.Errorf("a cleanly finished run was resumed: %+v", third)
			}
		})
	}
}

func apply(ctx context.Context, t *testing.T, env *Env, phases []Phase, root string) *Report {
	t.Helper()
	p, err := Plan(context.Background(), env, phases)
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := Apply(ctx, env, phases, p, ApplyOptions{BackupRoot: root, Backup: true})
	if rep == nil {
		t.Fatal("no report")
	}
	return rep
}

// snapKind records when its snapshot was taken relative to the applies.
type snapKind struct {
	listKind
	log *[]string
	err error
}

func (k *snapKind) Snapshot(_ context.Context, env *Env, p *plan.Plan) error {
	*k.log = append(*k.log, "snapshot "+string(k.kind)+" "+filepath.Base(env.BackupDir)+" "+p.Items()[0].Target)
	return k.err
}

type logKind struct {
	listKind
	log *[]string
}

func (k *logKind) Apply(ctx context.Context, env *Env, items []plan.Item, rec Recorder) {
	*k.log = append(*k.log, "apply "+string(k.kind))
	k.listKind.Apply(ctx, env, items, rec)
}

// A Snapshotter of a late phase saves its state before the first phase
// changes anything; when it fails, nothing is applied.
func TestApplySnapshotsBeforeTheFirstPhase(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "ok", true: "fails"}[fail], func(t *testing.T) {
			env := testEnv(t)
			var log []string
			snap := &snapKind{listKind: listKind{kind: "fw", items: []string{"rule"}}, log: &log}
			if fail {
				snap.err = errBoom
			}
			phases := []Phase{
				{"pods", []Kind{&logKind{listKind: listKind{kind: "pod", items: []string{"p"}}, log: &log}}},
				{"firewall", []Kind{snap}},
			}
			p, err := Plan(context.Background(), env, phases)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Apply(context.Background(), env, phases, p, ApplyOptions{BackupRoot: filepath.Join(env.Host.Root(), "b"), Backup: true})
			got := strings.Join(log, ", ")
			if !fail {
				if err != nil || !strings.HasPrefix(got, "snapshot fw 2") || !strings.HasSuffix(got, " p, apply pod") {
					t.Fatalf("order %q (%v): the snapshot must come first, in the run directory, with the plan", got, err)
				}
				return
			}
			if rep != nil || !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "nothing was changed") || strings.Contains(got, "apply") {
				t.Fatalf("a failed snapshot: report %v, err %v, log %q", rep, err, got)
			}
		})
	}
}

// An unfinished run whose journal ends more than ResumeWithin ago stays
// closed: its firewall backup and profile record are stale by now.
func TestLastUnfinishedTooOld(t *testing.T) {
	for _, tc := range []struct {
		name   string
		age    time.Duration
		resume bool
	}{
		{"an hour ago", time.Hour, true},
		{"two days ago", 48 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "20260101T000000Z")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			at := time.Now().Add(-tc.age).UTC().Format(time.RFC3339Nano)
			j := `{"event":"begin","time":"` + at + `"}` + "\n" + `{"event":"start","kind":"k","target":"x","time":"` + at + `"}` + "\n"
			if err := os.WriteFile(filepath.Join(dir, JournalName), []byte(j), 0o600); err != nil {
				t.Fatal(err)
			}
			u, err := LastUnfinished(root)
			if err != nil || (u != nil) != tc.resume {
				t.Errorf("LastUnfinished = %+v, %v; want resumed %v", u, err, tc.resume)
			}
		})
	}
}
