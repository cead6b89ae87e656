package cli

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"

	"github.com/nodereset/nodereset/internal/cluster"
)

// clusterProgress prints steps and drain progress to stderr: one updated
// line on a terminal, a line per change otherwise.
type clusterProgress struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	last string
}

func newClusterProgress(w io.Writer, quiet bool) cluster.Observer {
	if quiet {
		w = io.Discard
	}
	f, ok := w.(*os.File)
	return &clusterProgress{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (c *clusterProgress) Step(s cluster.StepResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty && c.last != "" {
		fmt.Fprintln(c.w)
		c.last = ""
	}
	if s.Status == cluster.StatusRunning {
		fmt.Fprintf(c.w, "==> %s\n", s.Name)
		return
	}
	msg := s.Detail
	if s.Error != "" {
		msg = s.Error
	}
	fmt.Fprintf(c.w, "    %s %s: %s\n", s.Name, s.Status, msg)
}

func (c *clusterProgress) Drain(p cluster.DrainProgress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := fmt.Sprintf("    pods gone %d/%d", p.Gone, p.Total)
	if len(p.Blocked) > 0 {
		line += fmt.Sprintf(", blocked %d: %s (%s)", len(p.Blocked), p.Blocked[0].Pod, p.Blocked[0].Note)
	}
	if line == c.last {
		return
	}
	c.last = line
	if c.tty {
		fmt.Fprintf(c.w, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(c.w, line)
}
