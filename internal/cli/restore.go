package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nodereset/nodereset/internal/firewall"
	"github.com/nodereset/nodereset/pkg/host"
)

type restoreOptions struct {
	firewall string
}

func newRestoreCommand(g *globalOptions, s Streams) *cobra.Command {
	o := &restoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore --firewall RUN_DIR",
		Short: "Put back what a reset saved",
		Long: `Put back the firewall a reset saved before it changed any rule.

RUN_DIR is a run directory under --backup-dir (as a host path, e.g.
/var/lib/nodereset/backups/20261201T061500Z) or its firewall/ subdirectory.
Each saved iptables table of each backend and family is replaced whole by the
saved one; tables that were not saved, and nft tables created after the
backup, are left alone.`,
		Example: `  nodereset restore --firewall /var/lib/nodereset/backups/20261201T061500Z`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.firewall == "" {
				return withCode(ExitError, errors.New("say what to restore: --firewall RUN_DIR"))
			}
			h, err := host.New(g.hostRoot)
			if err != nil {
				return withCode(ExitError, err)
			}
			dir, err := h.Resolve(o.firewall)
			if err != nil {
				return withCode(ExitError, err)
			}
			if err := firewall.Restore(cmd.Context(), dir); err != nil {
				return withCode(ExitResidue, fmt.Errorf("restore firewall from %s: %w", o.firewall, err))
			}
			fmt.Fprintf(s.Out, "Restored the firewall saved in %s.\n", o.firewall)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.firewall, "firewall", "", "run directory whose firewall backup to restore")
	_ = cmd.MarkFlagDirname("firewall")
	g.bindHostRoot(cmd)
	return cmd
}
