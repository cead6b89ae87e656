package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// printer is the one place user output is written. Results and plans go to
// out; progress goes to err so that -o json|yaml stays one document on
// stdout. Levels: 0 prints phases and failures, 1 (-v) every item as it
// finishes.
type printer struct {
	out, err io.Writer
	// data is set for -o json and -o yaml: one document of the command's
	// result instead of text.
	data      bool
	yaml      bool
	verbosity int
}

// outputFormats are the values of -o.
var outputFormats = []string{"text", "json", "yaml"}

// newPrinter checks -o and returns the printer for it.
func newPrinter(out, err io.Writer, format string, verbosity int) (*printer, error) {
	if !slices.Contains(outputFormats, format) {
		return nil, withCode(ExitError, fmt.Errorf("-o %q: use text, json or yaml", format))
	}
	return &printer{out: &sectionWriter{w: out}, err: err, data: format != "text", yaml: format == "yaml", verbosity: verbosity}, nil
}

// writeData writes v as JSON, or as the YAML of that JSON (as kubectl
// does, so field names are the same in both).
func (p *printer) writeData(v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil && p.yaml {
		b, err = yaml.JSONToYAML(b)
	} else if err == nil {
		b = append(b, '\n')
	}
	if err != nil {
		fmt.Fprintf(p.err, "error: write the result: %v\n", err)
		return
	}
	p.out.Write(b)
}

// Plan text limits. A column is padded to its longest cell, but at most to
// colCap: iptables rules run to 200 columns and would push every reason off
// the screen. At verbosity 0 a run of more than runLimit items of one kind
// and action shows its first runShown (-v and -o json list them all).
const (
	colCap   = 56
	runLimit = 20
	runShown = 10
)

func (p *printer) plan(pl *plan.Plan) {
	if p.data {
		p.writeData(pl)
		return
	}
	n := len(pl.Items())
	if n == 0 {
		fmt.Fprintf(p.out, "Nothing to do on %s (host root %s): no Kubernetes-owned state found.\n", pl.Host, pl.HostRoot)
		return
	}
	// Numbered among the phases that have items: nine headers of which
	// most say 0 hide the ones that matter.
	var phases []plan.Phase
	for _, ph := range pl.Phases {
		if len(ph.Items) > 0 {
			phases = append(phases, ph)
		}
	}
	fmt.Fprintf(p.out, "Plan for %s (host root %s, profile %s): %s in %d of %d phases\n",
		pl.Host, pl.HostRoot, strings.Join(pl.Profiles, ","), count(n, "item"), len(phases), len(pl.Phases))
	for _, e := range pl.Evidence {
		fmt.Fprintf(p.out, "  evidence: %s\n", e)
	}
	for i, ph := range phases {
		fmt.Fprintf(p.out, "\n[%d/%d] %s: %s\n", i+1, len(phases), ph.Name, count(len(ph.Items), "item"))
		table(p.out, p.shorten(ph.Items, func(it plan.Item) []string {
			return []string{string(it.Action), string(it.Kind), it.Target, it.Reason}
		}))
	}
	for _, w := range pl.Warnings {
		fmt.Fprintf(p.out, "warning: %s\n", w)
	}
}

// shorten turns items into table rows. At verbosity 0 a run of more than
// runLimit items of one kind and action keeps its first runShown and a
// one-cell row counting the rest.
func (p *printer) shorten(items []plan.Item, row func(plan.Item) []string) [][]string {
	var rows [][]string
	for start := 0; start < len(items); {
		end := start + 1
		for end < len(items) && items[end].Kind == items[start].Kind && items[end].Action == items[start].Action {
			end++
		}
		shown := end
		if p.verbosity == 0 && end-start > runLimit {
			shown = start + runShown
		}
		for _, it := range items[start:shown] {
			rows = append(rows, row(it))
		}
		if shown < end {
			rows = append(rows, []string{fmt.Sprintf("... and %d more %s items (%s); -v lists them all", end-shown, items[start].Kind, items[start].Action)})
		}
		start = end
	}
	return rows
}

// table writes rows indented by two spaces, each cell but the last padded
// to its column's width: its longest cell, at most colCap; a longer cell is
// followed by two spaces only. A one-cell row is a note, written as it is.
func table(w io.Writer, rows [][]string) {
	var width []int
	for _, r := range rows {
		for i := 0; i < len(r)-1; i++ {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], min(utf8.RuneCountInString(r[i]), colCap))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		b.WriteString("  ")
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", max(width[i]-utf8.RuneCountInString(c), 0)+2))
			}
		}
		b.WriteByte('\n')
	}
	io.WriteString(w, b.String())
}

// count is n and noun, plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// gap sets a section off from what was written before it with a blank line;
// the output does not start with one.
func (p *printer) gap() {
	if sw, ok := p.out.(*sectionWriter); !ok || sw.used {
		fmt.Fprintln(p.out)
	}
}

// sectionWriter remembers whether anything was written through it.
type sectionWriter struct {
	w    io.Writer
	used bool
}

func (s *sectionWriter) Write(b []byte) (int, error) {
	s.used = s.used || len(b) > 0
	return s.w.Write(b)
}

func (p *printer) report(r *engine.Report) {
	failed := r.Failed()
	dir := hostRunDir(r)
	p.gap()
	fmt.Fprintf(p.out, "Applied %s: %d done, %d failed. Journal and backups: %s\n",
		count(len(r.Results), "item"), len(r.Results)-len(failed), len(failed), dir)
	if r.Resumed {
		why := r.ResumedBecause
		if why == "" {
			why = "it had not finished"
		}
		fmt.Fprintf(p.out, "(resumed the last run: %s)\n", why)
	}
	// An interrupted run fails every item it did not reach: one line for
	// those, not one each.
	notStarted := 0
	for _, f := range failed {
		if r.Interrupted && strings.HasPrefix(f.Error, "not started") {
			notStarted++
			continue
		}
		fmt.Fprintf(p.out, "  FAILED %s %s: %s\n", f.Item.Kind, f.Item.Target, f.Error)
	}
	if notStarted += r.NotStarted; notStarted > 0 {
		fmt.Fprintf(p.out, "  not started: %s (interrupted)\n", count(notStarted, "item"))
	}
}

func (p *printer) verify(v *engine.VerifyReport) {
	p.gap()
	if v.Clean {
		fmt.Fprintln(p.out, "Verify: clean. Nothing Kubernetes-owned is left and the rejoin checks pass.")
		return
	}
	fmt.Fprintln(p.out, "Verify: NOT clean.")
	for _, r := range p.shorten(v.Residue, func(it plan.Item) []string {
		return []string{fmt.Sprintf("residue: %s %s (%s)", it.Kind, it.Target, it.Reason)}
	}) {
		fmt.Fprintf(p.out, "  %s\n", r[0])
	}
	for _, c := range v.Checks {
		for _, pr := range c.Problems {
			fmt.Fprintf(p.out, "  check %q: %s\n", c.Name, pr)
		}
		if c.Error != "" {
			fmt.Fprintf(p.out, "  check %q could not run: %s\n", c.Name, c.Error)
		}
	}
	for _, e := range v.Errors {
		fmt.Fprintf(p.out, "  could not check: %s\n", e)
	}
}

// reportRow is one step or object of a cluster-side report.
type reportRow struct{ status, what, detail, err string }

// results prints a cluster-side report: a line per row (its error, when it
// has one, in place of its detail), then what the operator must still do.
func (p *printer) results(title string, rows []reportRow, todo []string) {
	p.gap()
	fmt.Fprintf(p.out, "%s:\n", title)
	for _, r := range rows {
		msg := r.detail
		if r.err != "" {
			msg = r.err
		}
		fmt.Fprintf(p.out, "  %-8s %-21s %s\n", r.status, r.what, msg)
	}
	if len(todo) == 0 {
		return
	}
	fmt.Fprintln(p.out, "Still to do:")
	for _, t := range todo {
		fmt.Fprintf(p.out, "  - %s\n", t)
	}
}

func (p *printer) progress() engine.Observer { return &progress{p: p} }

// progress prints a line per phase and one per failure as they happen, so
// that a long reset shows where it is.
type progress struct {
	p      *printer
	mu     sync.Mutex
	start  time.Time
	total  int
	done   int
	failed int
}

func (g *progress) PhaseStart(name string, items int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.start, g.total, g.done, g.failed = time.Now(), items, 0, 0
	if items > 0 {
		fmt.Fprintf(g.p.err, "==> %s (%s)\n", name, count(items, "item"))
	}
}

func (g *progress) ItemDone(r plan.Result) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.done++
	switch {
	case r.Status != plan.StatusDone:
		g.failed++
		fmt.Fprintf(g.p.err, "    FAILED %s %s: %s\n", r.Item.Kind, r.Item.Target, r.Error)
	case g.p.verbosity > 0:
		fmt.Fprintf(g.p.err, "    %s %s %s (%s)\n", r.Item.Action, r.Item.Kind, r.Item.Target, r.Duration.Round(time.Microsecond))
	}
}

func (g *progress) PhaseEnd(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total > 0 {
		fmt.Fprintf(g.p.err, "    %s: %d done, %d failed in %s\n", name, g.done-g.failed, g.failed, time.Since(g.start).Round(time.Millisecond))
	}
}
