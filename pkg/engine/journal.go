package engine

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodereset/nodereset/pkg/plan"
)

// JournalName is the journal's file name inside a run directory.
const JournalName = "journal.jsonl"

// Journal events.
const (
	EventBegin  = "begin"
	EventStart  = "start"
	EventDone   = "done"
	EventFailed = "failed"
	EventEnd    = "end"
)

// Entry is one line of the journal.
type Entry struct {
	Time   time.Time   `json:"time"`
	Event  string      `json:"event"`
	Kind   plan.Kind   `json:"kind,omitempty"`
	Target string      `json:"target,omitempty"`
	Action plan.Action `json:"action,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// journal appends JSON lines, one write(2) each, so that a run killed at any
// point leaves a journal that says what was in flight. It syncs at phase ends
// only: a killed process loses nothing it wrote, and a sync per item would
// cost more than the unmount it records.
type journal struct {
	mu sync.Mutex
	f  *os.File
}

func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, JournalName), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := dropTornTail(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("repair journal %s: %w", f.Name(), err)
	}
	return &journal{f: f}, nil
}

// dropTornTail cuts a last line that a killed run left without its newline,
// so that the lines a resumed run appends stay parseable.
func dropTornTail(f *os.File) error {
	b, err := os.ReadFile(f.Name())
	if err != nil || len(b) == 0 || b[len(b)-1] == '\n' {
		return err
	}
	return f.Truncate(int64(strings.LastIndexByte(string(b), '\n') + 1))
}

func (j *journal) sync() error { return j.f.Sync() }

func (j *journal) write(e Entry) error {
	e.Time = time.Now().UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write journal %s: %w", j.f.Name(), err)
	}
	return nil
}

func (j *journal) close() error { return j.f.Close() }

// ReadJournal reads a journal. A last line cut short by a crash is skipped;
// any other malformed line is an error naming it.
func ReadJournal(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	var bad []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var e Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			bad = append(bad, fmt.Sprintf("line %d: %v", n, err))
			continue
		}
		if len(bad) > 0 {
			// A bad line followed by good ones is not a torn tail.
			return nil, fmt.Errorf("journal %s is corrupt (%s); move it away to start a fresh run", path, bad[0])
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	return out, nil
}

// Unfinished is the newest run of a backup directory when that run did not
// finish cleanly: the next reset resumes in its directory, so that all of a
// reset's backups end up in one place however many tries it takes.
type Unfinished struct {
	Dir string
	// Why says how it ended: killed (no end record), interrupted, or with
	// failed items.
	Why     string
	Entries []Entry
}

// ResumeWithin bounds how old an unfinished run may be and still be
// resumed: a run that failed weeks ago (the node rejoined since) must not
// lend a later reset its stale firewall backup and profile record.
const ResumeWithin = 24 * time.Hour

// LastUnfinished returns the newest run under backupRoot unless it finished
// cleanly (an end record without an error) or its journal's last line is
// older than ResumeWithin, or nil. A closed run stays closed: a later reset
// starts a directory of its own.
func LastUnfinished(backupRoot string) (*Unfinished, error) {
	dirs, err := os.ReadDir(backupRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read backup directory: %w", err)
	}
	var names []string
	for _, d := range dirs {
		if d.IsDir() {
			names = append(names, d.Name())
		}
	}
	// Run directories are named by UTC time, so lexical order is time order.
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		dir := filepath.Join(backupRoot, n)
		entries, err := ReadJournal(filepath.Join(dir, JournalName))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		why := "it was killed (its journal has no end record)"
		if len(entries) > 0 {
			last := entries[len(entries)-1]
			if !last.Time.IsZero() && time.Since(last.Time) > ResumeWithin {
				return nil, nil
			}
			if last.Event == EventEnd {
				if cleanEnd(last) {
					return nil, nil
				}
				why = last.Error
			}
		}
		return &Unfinished{Dir: dir, Why: why, Entries: entries}, nil
	}
	return nil, nil
}

// cleanEnd says whether an end record closes a run that finished with
// every item done. Journals written before end records left the error
// empty on success said "0 failed".
func cleanEnd(e Entry) bool { return e.Error == "" || e.Error == "0 failed" }

// endError is the end record's error: "" for a clean finish, else why the
// run is unfinished.
func endError(interrupted error, failed int) string {
	switch {
	case interrupted != nil:
		return fmt.Sprintf("it was interrupted (%v) with %d items failed or not started", interrupted, failed)
	case failed > 0:
		return fmt.Sprintf("%d items failed", failed)
	}
	return ""
}
