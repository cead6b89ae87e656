package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// listKind is an in-memory kind: the engine's own mechanics are tested here;
// every real kind is tested against the real kernel in its package.
type listKind struct {
	kind     plan.Kind
	items    []string
	fail     map[string]bool
	skip     map[string]bool // not reported: a buggy kind
	discover error
	applied  []string
}

func (k *listKind) Kind() plan.Kind { return k.kind }
func (k *listKind) Discover(context.Context, *Env) ([]plan.Item, error) {
	var out []plan.Item
	for _, t := range k.items {
		out = append(out, plan.Item{Kind: k.kind, Target: t, Action: plan.ActionRemove})
	}
	return out, k.discover
}
func (k *listKind) Apply(_ context.Context, _ *Env, items []plan.Item, rec Recorder) {
	for _, it := range items {
		if k.skip[it.Target] {
			continue
		}
		rec.Start(it)
		k.applied = append(k.applied, it.Target)
		if k.fail[it.Target] {
			rec.Done(it, errBoom)
			continue
		}
		rec.Done(it, nil)
	}
}

var errBoom = errors.New("boom")

func testEnv(t *testing.T) *Env {
	t.Helper()
	h, err := host.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestPlan(t *testing.T) {
	a := &listKind{kind: "a", items: []string{"a1", "a2"}}
	b := &listKind{kind: "b", items: []string{"b1"}}
	tests := []struct {
		name     string
		phases   []Phase
		want     []string
		wantErr  bool
		wantKind plan.Kind
	}{
		{"order follows phases", []Phase{{"second", []Kind{b}}, {"first", []Kind{a}}}, []string{"b1", "a1", "a2"}, false, ""},
		{"discover error keeps the rest", []Phase{{"x", []Kind{a, &listKind{kind: "bad", discover: errBoom}}}}, []string{"a1", "a2"}, true, "bad"},
		{"empty", []Phase{{"x", []Kind{&listKind{kind: "none"}}}}, nil, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Plan(context.Background(), testEnv(t), tc.phases)
			var got []string
			for _, it := range p.Items() {
				got = append(got, it.Target)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("items %v, want %v", got, tc.want)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			var de *DiscoverError
			if tc.wantErr && (!errors.As(err, &de) || de.Kind != tc.wantKind || !errors.Is(err, errBoom)) {
				t.Errorf("err %v is not a DiscoverError for %s wrapping boom", err, tc.wantKind)
			}
			if p.Empty() != (len(tc.want) == 0) {
				t.Errorf("Empty() = %v", p.Empty())
			}
		})
	}
}

func TestApplyRecordsEveryItem(t *testing.T) {
	env := testEnv(t)
	k := &listKind{kind: "k", items: []string{"ok", "bad", "forgotten"}, fail: map[string]bool{"bad": true}, skip: map[string]bool{"forgotten": true}}
	phases := []Phase{{"only", []Kind{k}}}
	p, err := Plan(context.Background(), env, phases)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(env.Host.Root(), "backups")
	rep, err := Apply(context.Background(), env, phases, p, ApplyOptions{BackupRoot: root, Backup: true})
	if !errors.Is(err, errBoom) || !errors.Is(err, ErrNotReported) {
		t.Fatalf("error %v must wrap boom and ErrNotReported", err)
	}
	var ie *ItemError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v has no ItemError", err)
	}
	status := map[string]plan.Status{}
	for _, r := range rep.Results {
		status[r.Item.Target] = r.Status
	}
	want := map[string]plan.Status{"ok": plan.StatusDone, "bad": plan.StatusFailed, "forgotten": plan.StatusFailed}
	for tgt, st := range want {
		if status[tgt] != st {
			t.Errorf("%s: %s, want %s", tgt, status[tgt], st)
		}
	}
	entries, err := ReadJournal(filepath.Join(rep.RunDir, JournalName))
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, e := range entries {
		events = append(events, e.Event+":"+e.Target)
	}
	got := strings.Join(events, " ")
	if got != "begin: start:ok done:ok start:bad failed:bad failed:forgotten end:" {
		t.Errorf("journal %q", got)
	}
	if u, err := LastUnfinished(root); err != nil || u == nil || u.Dir != rep.RunDir || u.Why != "2 items failed" {
		t.Errorf("a run with failed items is not unfinished: %+v %v", u, err)
	}
}

func TestApplyResumesInterruptedRun(t *testing.T) {
	env := testEnv(t)
	root := filepath.Join(env.Host.Root(), "backups")
	crashed := filepath.Join(root, "20260101T000000Z")
	if err := os.MkdirAll(crashed, 0o700); err != nil {
		t.Fatal(err)
	}
	// A killed run: begin, one start, and a line torn mid-write.
	torn := `{"event":"begin"}` + "\n" + `{"event":"start","kind":"k","target":"x"}` + "\n" + `{"event":"do`
	if err := os.WriteFile(filepath.Join(crashed, JournalName), []byte(torn), 0o600); err != nil {
		t.Fatal(err)
	}
	if u, err := LastUnfinished(root); err != nil || u == nil || u.Dir != crashed || len(u.Entries) != 2 {
		t.Fatalf("LastUnfinished = %+v, %v", u, err)
	}
	k := &listKind{kind: "k", items: []string{"x"}}
	phases := []Phase{{"only", []Kind{k}}}
	p, _ := Plan(context.Background(), env, phases)
	rep, err := Apply(context.Background(), env, phases, p, ApplyOptions{BackupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.RunDir != crashed {
		t.Errorf("resumed=%v dir=%s, want the crashed run's dir", rep.Resumed, rep.RunDir)
	}
	entries, err := ReadJournal(filepath.Join(crashed, JournalName))
	if err != nil {
		t.Fatalf("journal after resume: %v", err)
	}
	if last := entries[len(entries)-1]; last.Event != EventEnd {
		t.Errorf("last event %q", last.Event)
	}
}

func TestReadJournalCorrupt(t *testing.T) {
	p := filepath.Join(t.TempDir(), JournalName)
	if err := os.WriteFile(p, []byte("{\"event\":\"begin\"}\nnot json\n{\"event\":\"end\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJournal(p); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err %v, want one naming line 2", err)
	}
}

type check struct {
	problems []string
	err      error
}

func (c check) Name() string                                { return "c" }
func (c check) Run(context.Context, *Env) ([]string, error) { return c.problems, c.err }

func TestVerify(t *testing.T) {
	tests := []struct {
		name     string
		items    []string
		check    check
		clean    bool
		couldNot bool
	}{
		{"clean", nil, check{}, true, false},
		{"residue", []string{"left"}, check{}, false, false},
		{"check problem", nil, check{problems: []string{"port 10250 in use"}}, false, false},
		{"could not check", nil, check{err: errBoom}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			phases := []Phase{{"p", []Kind{&listKind{kind: "k", items: tc.items}}}}
			r, err := Verify(context.Background(), testEnv(t), phases, []Check{tc.check})
			if r.Clean != tc.clean {
				t.Errorf("clean = %v", r.Clean)
			}
			if errors.Is(err, ErrCouldNotCheck) != tc.couldNot {
				t.Errorf("err = %v", err)
			}
			if len(r.Residue) != len(tc.items) {
				t.Errorf("residue %v", r.Residue)
			}
		})
	}
}

// Two kinds producing one Kind in one phase (CRI and Docker containers)
// each apply only their own items.
func TestApplyRoutesItemsToTheirKind(t *testing.T) {
	env := testEnv(t)
	cri := &listKind{kind: "container", items: []string{"cri-1", "cri-2"}}
	docker := &listKind{kind: "container", items: []string{"docker-1"}}
	phases := []Phase{{"containers", []Kind{cri, docker}}}
	p, err := Plan(context.Background(), env, phases)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), env, phases, p, ApplyOptions{BackupRoot: filepath.Join(env.Host.Root(), "b")}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cri.applied, ","); got != "cri-1,cri-2" {
		t.Errorf("cri applied %s", got)
	}
	if got := strings.Join(docker.applied, ","); got != "docker-1" {
		t.Errorf("docker applied %s", got)
	}
}
