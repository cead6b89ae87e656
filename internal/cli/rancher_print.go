package cli

import (
	"fmt"

	"github.com/nodereset/nodereset/internal/rancher"
)

func printCleanupPlan(pr *printer, p *rancher.CleanupPlan) {
	if pr.data {
		pr.writeData(p)
		return
	}
	if len(p.Items) == 0 {
		fmt.Fprintf(pr.out, "Nothing of Rancher's found in %s.\n", p.Server)
		return
	}
	fmt.Fprintf(pr.out, "Plan: remove Rancher from %s: %d objects\n", p.Server, len(p.Items))
	for _, it := range p.Items {
		fmt.Fprintf(pr.out, "  %-6s %s (%s)\n", it.Action, it.Object(), it.Reason)
		for _, r := range it.Remove {
			fmt.Fprintf(pr.out, "           - %s\n", r)
		}
	}
}

func printOrphans(pr *printer, p *rancher.OrphanPlan) {
	if pr.data {
		pr.writeData(p)
		return
	}
	fmt.Fprintf(pr.out, "Rancher cluster %s (%s), endpoint %s\n", p.Cluster.ID, p.Cluster.DisplayName, p.Cluster.APIEndpoint)
	if p.Consistent() {
		fmt.Fprintln(pr.out, "  consistent: every record has its node and every node a record")
	}
	for _, o := range p.Orphans {
		line := fmt.Sprintf("  orphan     %s: node %s is gone", o.Record.Object(), o.Record.Node.Name)
		if o.Fix != "" {
			line += "; --fix: " + o.Fix
		}
		if o.Note != "" {
			line += " (" + o.Note + ")"
		}
		fmt.Fprintln(pr.out, line)
	}
	for _, c := range p.Conflicts {
		fmt.Fprintf(pr.out, "  conflict   %s %s: left alone\n", c.Record.Object(), c.Why)
	}
	for _, n := range p.Unrecorded {
		fmt.Fprintf(pr.out, "  unrecorded node %s (providerID %s)\n", n.Name, n.ProviderID)
	}
}

func printRancherReport(pr *printer, title string, rep *rancher.Report) {
	rows := make([]reportRow, len(rep.Results))
	for i, r := range rep.Results {
		rows[i] = reportRow{string(r.Status), r.Object + ":", r.Detail, r.Error}
	}
	pr.results(title, rows, rep.Remaining)
}
