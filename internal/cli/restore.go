package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
		Long: `Put back the firewall a reset saved before it changed anything.

RUN_DIR is a run directory under --backup-dir, as reset prints it (a host
path, e.g. /var/lib/nodereset/backups/20261201T061500Z) or its firewall/
subdirectory; the same path with --host-root in front is accepted too.
The owned ipsets the reset saved are restored first (the rules match them),
each replaced whole; then each saved iptables table of each backend and
family is replaced whole by the saved one; tables that were not saved, and
nft tables created after the backup, are left alone.

Exit 0: restored. Exit 1: some of it failed (see the message). Exit 2:
RUN_DIR does not exist or holds no firewall backup; nothing was changed.`,
		Example: `  nodereset restore --firewall /var/lib/nodereset/backups/20261201T061500Z`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return withCode(ExitError, fmt.Errorf("restore takes the run directory as a flag: use 'nodereset restore --firewall %s'; nothing was changed", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.firewall == "" {
				return withCode(ExitError, errors.New("say what to restore: --firewall RUN_DIR"))
			}
			h, err := host.New(g.hostRoot)
			if err != nil {
				return withCode(ExitError, err)
			}
			dir, err := runDirPath(h, o.firewall)
			if err == nil {
				err = firewall.Restore(cmd.Context(), dir)
			}
			switch {
			case errors.Is(err, errNoRunDir), errors.Is(err, firewall.ErrNoBackup):
				return withCode(ExitError, fmt.Errorf("%w\n%s", err, backupsHint(h, g.backupDir)))
			case err != nil:
				return withCode(ExitResidue, fmt.Errorf("restore firewall from %s: %w", o.firewall, err))
			}
			fmt.Fprintf(s.Out, "Restored the firewall saved in %s.\n", o.firewall)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.firewall, "firewall", "", "run directory whose firewall backup to restore")
	cmd.Flags().StringVar(&g.backupDir, "backup-dir", DefaultBackupDir, "host path (under --host-root) of the run directories, listed when RUN_DIR is not one")
	_ = cmd.MarkFlagDirname("firewall")
	g.bindHostRoot(cmd)
	return cmd
}

// runDirPath resolves RUN_DIR, given as a host path or as nodereset sees
// it (with the --host-root prefix that older versions of reset printed).
func runDirPath(h *host.Host, arg string) (string, error) {
	if p, err := h.Resolve(arg); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if rel, err := h.Rel(arg); err == nil && h.Root() != "/" {
		if p, err := h.Resolve(rel); err == nil {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("run directory %s %w; nothing was changed", arg, errNoRunDir)
}

// errNoRunDir is runDirPath's error for a RUN_DIR that is not there.
var errNoRunDir = errors.New("does not exist")

// backupsHint lists, as host paths, the run directories that hold a
// firewall backup.
func backupsHint(h *host.Host, backupDir string) string {
	dirs, err := firewall.Backups(h.Path(backupDir))
	if err != nil {
		return fmt.Sprintf("cannot list the run directories in %s: %v", backupDir, err)
	}
	if len(dirs) == 0 {
		return fmt.Sprintf("no run directory in %s holds a firewall backup", backupDir)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "run directories with a firewall backup, newest first:")
	for _, d := range dirs {
		if rel, err := h.Rel(d); err == nil {
			d = rel
		}
		b.WriteString("\n  " + filepath.Clean(d))
	}
	return b.String()
}
