package ipsets

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
)

// Runner runs one program with stdin and returns its stdout
// (firewall.ExecRunner is one).
type Runner interface {
	Has(name string) bool
	Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error)
}

// Save returns the owned sets, headers and members, in `ipset save` form,
// or nil when there are none. The firewall backup holds it, so that a
// restore can create the sets before the rules that match them. One
// `ipset save` lists every set; only lines whose set name (the second
// field) is owned are kept, so the user's sets are neither saved nor ever
// restored over. Without the ipset program (Calico programs its sets
// itself, so a host need not have it) nothing is saved and unsaved names
// the owned sets: destroying them needs only netlink, and a reset is not
// refused for a backup of state the CNI recreates.
func Save(ctx context.Context, run Runner) (saved []byte, unsaved []string, err error) {
	sets, err := netlink.IpsetListAll()
	if absent(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list ipsets: %w", err)
	}
	var owned []string
	for _, s := range sets {
		if _, ok := Owned(s.SetName); ok {
			owned = append(owned, s.SetName)
		}
	}
	if len(owned) == 0 {
		return nil, nil, nil
	}
	if !run.Has("ipset") {
		return nil, owned, nil
	}
	out, err := run.Run(ctx, "ipset", []string{"save"}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("ipset save: %w", err)
	}
	return ownedLines(out), nil, nil
}

// ownedLines keeps the "create NAME ..." and "add NAME ..." lines of owned
// sets.
func ownedLines(saved []byte) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(saved))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (f[0] != "create" && f[0] != "add") {
			continue
		}
		if _, ok := Owned(f[1]); ok {
			out.WriteString(sc.Text() + "\n")
		}
	}
	return out.Bytes()
}

// Restore brings back the sets Save saved: each is created unless it
// exists with the same type and options, emptied, and filled with the
// saved members, in one `ipset restore`. Run it before the iptables rules
// that match the sets.
func Restore(ctx context.Context, run Runner, saved []byte) error {
	script := restoreScript(saved)
	if len(script) == 0 {
		return nil
	}
	if !run.Has("ipset") {
		return fmt.Errorf("the backup holds ipsets %s but the ipset program is not installed to restore them: install ipset", strings.Join(setNames(saved), ", "))
	}
	if _, err := run.Run(ctx, "ipset", []string{"restore", "-exist"}, script); err != nil {
		return fmt.Errorf("restore ipsets %s: %w", strings.Join(setNames(saved), ", "), err)
	}
	return nil
}

// restoreScript adds a flush after each owned set's create line, so that
// members added after the backup go: a set is replaced whole, as the
// iptables tables are.
func restoreScript(saved []byte) []byte {
	var s bytes.Buffer
	for line := range strings.Lines(string(ownedLines(saved))) {
		s.WriteString(line)
		if f := strings.Fields(line); f[0] == "create" {
			s.WriteString("flush " + f[1] + "\n")
		}
	}
	return s.Bytes()
}

func setNames(saved []byte) []string {
	var names []string
	for line := range strings.Lines(string(ownedLines(saved))) {
		if f := strings.Fields(line); f[0] == "create" {
			names = append(names, f[1])
		}
	}
	return names
}

// Missing returns those of names that are not sets in this network
// namespace, sorted.
func Missing(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	sets, err := netlink.IpsetListAll()
	if err != nil && !absent(err) {
		return nil, fmt.Errorf("list ipsets: %w", err)
	}
	have := map[string]bool{}
	for _, s := range sets {
		have[s.SetName] = true
	}
	var out []string
	for _, n := range names {
		if !have[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}
