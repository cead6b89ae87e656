package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

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
	return &printer{out: out, err: err, data: format != "text", yaml: format == "yaml", verbosity: verbosity}, nil
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
	fmt.Fprintf(p.out, "Plan for %s (host root %s, profile %s): %d items\n", pl.Host, pl.HostRoot, strings.Join(pl.Profiles, ","), n)
	for _, e := range pl.Evidence {
		fmt.Fprintf(p.out, "  evidence: %s\n", e)
	}
	for i, ph := range pl.Phases {
		fmt.Fprintf(p.out, "\n[%d/%d] %s: %d\n", i+1, len(pl.Phases), ph.Name, len(ph.Items))
		tw := tabwriter.NewWriter(p.out, 2, 4, 2, ' ', 0)
		for _, it := range ph.Items {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", it.Action, it.Kind, it.Target, it.Reason)
		}
		tw.Flush()
	}
	for _, w := range pl.Warnings {
		fmt.Fprintf(p.out, "warning: %s\n", w)
	}
}

func (p *printer) report(r *engine.Report) {
	failed := r.Failed()
	fmt.Fprintf(p.out, "\nApplied %d items: %d done, %d failed. Journal and backups: %s\n",
		len(r.Results), len(r.Results)-len(failed), len(failed), r.RunDir)
	if r.Resumed {
		fmt.Fprintln(p.out, "(resumed a run that had been interrupted)")
	}
	for _, f := range failed {
		fmt.Fprintf(p.out, "  FAILED %s %s: %s\n", f.Item.Kind, f.Item.Target, f.Error)
	}
}

func (p *printer) verify(v *engine.VerifyReport) {
	if v.Clean {
		fmt.Fprintln(p.out, "\nVerify: clean. Nothing Kubernetes-owned is left and the rejoin checks pass.")
		return
	}
	fmt.Fprintln(p.out, "\nVerify: NOT clean.")
	for _, it := range v.Residue {
		fmt.Fprintf(p.out, "  residue: %s %s (%s)\n", it.Kind, it.Target, it.Reason)
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
	fmt.Fprintf(p.out, "\n%s:\n", title)
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
		fmt.Fprintf(g.p.err, "==> %s (%d items)\n", name, items)
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
