package firewall

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/ipsets"
	"github.com/nodereset/nodereset/pkg/engine"
)

// BackupDirName is the subdirectory of a run's backup directory that holds
// the firewall as it was before the run changed it.
const BackupDirName = "firewall"

// NftRulesetFile is the backup of every nft table that iptables-nft does
// not manage, as `nft list table` prints it.
const NftRulesetFile = "nft.ruleset"

// IPSetFile is the backup of the owned ipsets, as `ipset save` prints them.
const IPSetFile = "ipset.save"

// Backup saves every backend's *-save output, the nft tables and the owned
// ipsets into env.BackupDir/firewall, once per run: a resumed run keeps the
// first backup (the firewall as it was before anything changed). It does
// nothing when backups are off. The firewall kind calls it before the
// run's first phase (Kind.Snapshot); every kind that changes the firewall
// calls it again first (a no-op once it is there) and changes nothing when
// it fails.
func Backup(ctx context.Context, env *engine.Env, o Options) error {
	if env.BackupDir == "" {
		return nil
	}
	o = o.withDefaults()
	final := filepath.Join(env.BackupDir, BackupDirName)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	tmp := final + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("firewall backup: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("firewall backup: %w", err)
	}
	for _, b := range o.Backends {
		if !o.Runner.Has(b.SaveCommand()) {
			continue
		}
		out, err := bounded{o.Runner, o.Timeout}.Run(ctx, b.SaveCommand(), nil, nil)
		if err != nil {
			return fmt.Errorf("firewall backup of %s, nothing was changed: %w", b, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, b.fileName()), out, 0o600); err != nil {
			return fmt.Errorf("firewall backup: %w", err)
		}
	}
	if err := backupNft(ctx, env, o, filepath.Join(tmp, NftRulesetFile)); err != nil {
		return err
	}
	sets, unsaved, err := ipsets.Save(ctx, bounded{o.Runner, o.Timeout})
	if err != nil {
		return fmt.Errorf("firewall backup, nothing was changed: %w", err)
	}
	if len(unsaved) > 0 {
		env.Log.Warn("the ipset program is not installed: Kubernetes' ipsets are not in the firewall backup, and restore --firewall cannot bring them back", "sets", strings.Join(unsaved, ","))
	}
	if sets != nil {
		if err := os.WriteFile(filepath.Join(tmp, IPSetFile), sets, 0o600); err != nil {
			return fmt.Errorf("firewall backup: %w", err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("firewall backup: %w", err)
	}
	env.Log.Info("firewall backed up", "dir", final)
	return nil
}

// backupNft saves every nft table iptables-nft does not manage, listed in
// one nft run each (`nft list ruleset` would decode the iptables-nft tables as
// well: 3.3 s for 10,000 Services, and they are saved by *-save already).
func backupNft(ctx context.Context, env *engine.Env, o Options, file string) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("firewall backup, nothing was changed: open nf_tables netlink: %w", err)
	}
	tables, err := conn.ListTables()
	if errors.Is(err, unix.EPROTONOSUPPORT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("firewall backup, nothing was changed: list nft tables: %w", err)
	}
	var out bytes.Buffer
	n := 0
	for _, t := range tables {
		fam := FamilyName(t.Family)
		if fam == "" || (fam == "ip" || fam == "ip6") && xtablesTables[t.Name] {
			continue
		}
		if !o.Runner.Has("nft") {
			return fmt.Errorf("firewall backup, nothing was changed: nft table %s %s exists but the nft program is not installed to save it: install nftables or pass --no-backup", fam, t.Name)
		}
		// One run per table: nft 1.0.6 fails a script of several
		// "list table" commands with ENOENT.
		b, err := bounded{o.Runner, o.Timeout}.Run(ctx, "nft", []string{"list", "table", fam, t.Name}, nil)
		if err != nil {
			return fmt.Errorf("firewall backup of nft table %s %s, nothing was changed: %w", fam, t.Name, err)
		}
		out.Write(b)
		n++
	}
	env.Log.Debug("nft tables backed up", "tables", n)
	return os.WriteFile(file, out.Bytes(), 0o600)
}

// FamilyName is the nft command's name of a table family ("" if unknown).
func FamilyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return ""
}

// xtablesTables are the tables iptables-nft manages in the ip and ip6
// families; their content is restored through iptables-nft-restore.
var xtablesTables = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}

// NftTable is one top-level table block of `nft list ruleset` output.
type NftTable struct {
	Family, Name string
	// Text is the block from "table F N {" to its closing "}".
	Text string
	// Iptables is set for tables iptables-nft (or ebtables/arptables-nft)
	// manages: nft cannot load their xt expressions back.
	Iptables bool
}

// ParseRuleset splits `nft list ruleset` output into its tables.
func ParseRuleset(b []byte) []NftTable {
	var out []NftTable
	var cur *NftTable
	var text strings.Builder
	warned := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if cur == nil {
			if strings.HasPrefix(line, "# Warning: table ") && strings.Contains(line, "managed by iptables-nft") {
				warned = true
				continue
			}
			f := strings.Fields(line)
			if len(f) == 4 && f[0] == "table" && f[3] == "{" {
				cur = &NftTable{Family: f[1], Name: f[2]}
				cur.Iptables = warned || (f[1] == "ip" || f[1] == "ip6") && xtablesTables[f[2]]
				text.Reset()
				text.WriteString(line + "\n")
			}
			warned = false
			continue
		}
		text.WriteString(line + "\n")
		if line == "}" {
			cur.Text = text.String()
			out = append(out, *cur)
			cur = nil
		}
	}
	return out
}

// bounded gives each program run a deadline of its own.
type bounded struct {
	Runner
	timeout time.Duration
}

func (b bounded) Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Runner.Run(ctx, name, args, stdin)
}
