package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodereset/nodereset/internal/ipsets"
)

// ErrNoBackup is returned by Restore for a directory that holds no
// firewall backup; nothing was changed.
var ErrNoBackup = errors.New("holds no firewall backup")

// Restore puts back the firewall saved by Backup in dir (a run directory
// or its firewall subdirectory): the owned ipsets first, since the saved
// rules match them, each replaced whole; then each saved backend's tables
// are replaced whole by the saved ones (iptables-restore without
// --noflush; tables that were not saved are untouched), then each saved
// nft table that iptables-nft does not manage is replaced by its saved
// text in one nft transaction (tables created after the backup stay).
// Every program run is bounded by DefaultTimeout.
func Restore(ctx context.Context, dir string) error {
	return restoreWith(ctx, dir, ExecRunner{})
}

func restoreWith(ctx context.Context, dir string, run Runner) error {
	run = bounded{run, DefaultTimeout}
	if st, err := os.Stat(filepath.Join(dir, BackupDirName)); err == nil && st.IsDir() {
		dir = filepath.Join(dir, BackupDirName)
	}
	found := false
	var errs []error
	sets, err := os.ReadFile(filepath.Join(dir, IPSetFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		errs = append(errs, err)
	default:
		found = true
		if err := ipsets.Restore(ctx, run, sets); err != nil {
			errs = append(errs, err)
		}
	}
	for _, b := range AllBackends() {
		saved, err := os.ReadFile(filepath.Join(dir, b.fileName()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		found = true
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !bytes.Contains(saved, []byte("\n*")) && !bytes.HasPrefix(saved, []byte("*")) {
			continue // the backend had no tables
		}
		if _, err := run.Run(ctx, b.RestoreCommand(), []string{"-w", waitSeconds}, saved); err != nil {
			errs = append(errs, fmt.Errorf("restore %s from %s: %w%s", b, filepath.Join(dir, b.fileName()), err, missingSets(saved)))
		}
	}
	saved, err := os.ReadFile(filepath.Join(dir, NftRulesetFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		errs = append(errs, err)
	default:
		found = true
		if script := nftRestoreScript(saved); len(script) > 0 {
			if _, err := run.Run(ctx, "nft", []string{"-f", "-"}, script); err != nil {
				errs = append(errs, fmt.Errorf("restore nft tables from %s: %w", filepath.Join(dir, NftRulesetFile), err))
			}
		}
	}
	if !found && len(errs) == 0 {
		return fmt.Errorf("%s %w (expected %s or *.rules files): pass the run directory of the reset; nothing was changed", dir, ErrNoBackup, NftRulesetFile)
	}
	return errors.Join(errs...)
}

// missingSets explains a failed restore of rules that match ipsets which
// do not exist (a backup taken before nodereset saved ipsets, or a user
// set that is gone), naming them; "" when there are none.
func missingSets(saved []byte) string {
	var names []string
	seen := map[string]bool{}
	for line := range strings.Lines(string(saved)) {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--match-set" && !seen[f[i+1]] {
				seen[f[i+1]] = true
				names = append(names, f[i+1])
			}
		}
	}
	missing, err := ipsets.Missing(names)
	if err != nil || len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("; the saved rules match ipsets that do not exist and that this backup cannot bring back: %s (create them, then run restore again)", strings.Join(missing, ", "))
}

// Backups returns the run directories under backupRoot that hold a
// firewall backup, newest first.
func Backups(backupRoot string) ([]string, error) {
	ents, err := os.ReadDir(backupRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read backup directory: %w", err)
	}
	var out []string
	for i := len(ents) - 1; i >= 0; i-- { // ReadDir sorts by name: UTC time
		dir := filepath.Join(backupRoot, ents[i].Name())
		if st, err := os.Stat(filepath.Join(dir, BackupDirName)); err == nil && st.IsDir() && ents[i].IsDir() {
			out = append(out, dir)
		}
	}
	return out, nil
}

// nftRestoreScript re-creates each saved table iptables does not manage:
// "add table" makes the delete succeed when it is gone, then the saved
// text defines it again, all in one transaction.
func nftRestoreScript(saved []byte) []byte {
	var s bytes.Buffer
	for _, t := range ParseRuleset(saved) {
		if t.Iptables {
			continue
		}
		fmt.Fprintf(&s, "add table %s %s\ndelete table %s %s\n%s", t.Family, t.Name, t.Family, t.Name, t.Text)
	}
	return s.Bytes()
}
