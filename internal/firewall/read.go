package firewall

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// wantRules says which chains' rules a reader must fetch. Legacy saves
// everything at once anyway; for nft the rules of the chains not asked
// for are never fetched.
type wantRules func(table string, c Chain) bool

// foreignChain wants the rules of every chain that is not owned: the
// chains that stay, where owned rules live (an owned chain goes with all
// its rules, which are never read).
func foreignChain(_ string, c Chain) bool {
	if c.Builtin() {
		return true
	}
	_, owned := OwnedChain(c.Name)
	return !owned
}

// withAdmin also wants AdminChain's rules, on which its ownership depends.
func withAdmin(want wantRules) wantRules {
	return func(table string, c Chain) bool { return c.Name == AdminChain || want(table, c) }
}

// read returns a backend's tables. The legacy backend is read with one
// *-save. The nft backend is read through netlink for the chain list and
// with one `iptables-nft -t T -S C` per wanted chain for rules: measured
// on 10,000 Services (70k lines), iptables-nft-save takes 3.3 s because it
// decodes every rule, listing the chains 0.07 s and -S of a built-in chain
// a few ms. AdminChain's rules are read whatever want says. ok is false
// when the backend is not there at all.
func read(ctx context.Context, o Options, b Backend, want wantRules) (tables []Table, ok bool, err error) {
	want = withAdmin(want)
	cctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if b.Name == "legacy" {
		tables, _, ok, err := saveWanted(cctx, o.Runner, b, want)
		return tables, ok, err
	}
	if !o.Runner.Has(b.tool()) {
		return nil, false, nil
	}
	tables, err = nftChains(b)
	if err != nil || len(tables) == 0 {
		return nil, err == nil, err
	}
	for i := range tables {
		t := &tables[i]
		for _, c := range t.Chains {
			if !want(t.Name, c) {
				continue
			}
			rules, err := listChain(cctx, o.Runner, b, t.Name, c.Name)
			if err != nil && c.Name == AdminChain {
				rules, err = adminRulesNft(b, t.Name, err)
			}
			if err != nil {
				return nil, true, err
			}
			t.Rules = append(t.Rules, rules...)
		}
	}
	return tables, true, nil
}

// adminRulesNft stands in for AdminChain's rules when iptables-nft cannot
// print them (rules written with nft: "incompatible, use 'nft' tool").
// Whoever wrote them, they are not the plugin's, which never writes
// there: one placeholder rule per nf_tables rule makes the chain filled,
// so it stays, and owns nothing (it jumps nowhere, has no comment).
func adminRulesNft(b Backend, table string, listErr error) ([]Rule, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, errors.Join(listErr, err)
	}
	got, err := conn.GetRules(&nftables.Table{Name: table, Family: nftFamily(b)}, &nftables.Chain{Name: AdminChain})
	if err != nil || len(got) == 0 {
		return nil, errors.Join(listErr, err)
	}
	rules := make([]Rule, len(got))
	for i := range got {
		rules[i] = Rule{Chain: AdminChain, Spec: "(a rule iptables-nft cannot print; see nft list chain)"}
	}
	return rules, nil
}

// nftFamily is the nf_tables family of an iptables-nft backend.
func nftFamily(b Backend) nftables.TableFamily {
	if b.Family == "ip6" {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

// nftChains lists the chains of the tables iptables-nft manages in the
// backend's family, by table, built-in chains (those with a hook) first.
func nftChains(b Backend) ([]Table, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nf_tables netlink for %s: %w", b, err)
	}
	chains, err := conn.ListChainsOfTableFamily(nftFamily(b))
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ENOENT) {
		return nil, nil // no nf_tables in this kernel
	}
	if err != nil {
		return nil, fmt.Errorf("list %s chains: %w", b, err)
	}
	byTable := map[string]*Table{}
	var names []string
	for _, c := range chains {
		if c.Table == nil || !xtablesTables[c.Table.Name] {
			continue
		}
		t := byTable[c.Table.Name]
		if t == nil {
			t = &Table{Name: c.Table.Name}
			byTable[c.Table.Name] = t
			names = append(names, c.Table.Name)
		}
		ch := Chain{Name: c.Name, Policy: "-"}
		if c.Hooknum != nil {
			ch.Policy = "ACCEPT"
			if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
				ch.Policy = "DROP"
			}
		}
		t.Chains = append(t.Chains, ch)
	}
	sort.Strings(names)
	out := make([]Table, 0, len(names))
	for _, n := range names {
		t := byTable[n]
		sort.SliceStable(t.Chains, func(i, j int) bool { return t.Chains[i].Builtin() && !t.Chains[j].Builtin() })
		out = append(out, *t)
	}
	return out, nil
}

// listChain returns one chain's rules as `iptables -S CHAIN` prints them
// (the same text iptables-save prints).
func listChain(ctx context.Context, run Runner, b Backend, table, chain string) ([]Rule, error) {
	out, err := run.Run(ctx, b.tool(), []string{"-w", waitSeconds, "-t", table, "-S", chain}, nil)
	if err != nil {
		return nil, fmt.Errorf("list %s %s %s: %w", b, table, chain, err)
	}
	return parseListing(out, chain)
}

// parseListing parses `iptables -S CHAIN` output: "-P"/"-N" lines and the
// chain's "-A" lines.
func parseListing(out []byte, chain string) ([]Rule, error) {
	var rules []Rule
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "-A "+chain)
		if !ok || (rest != "" && rest[0] != ' ') {
			continue
		}
		spec := strings.TrimPrefix(rest, " ")
		args, err := splitArgs(spec)
		if err != nil {
			return nil, fmt.Errorf("iptables -S %s line %d: %w", chain, n, err)
		}
		rules = append(rules, Rule{Chain: chain, Spec: spec, Args: args})
	}
	return rules, sc.Err()
}

// nftChunk bounds one netlink transaction: google/nftables sends a whole
// batch in one sendmsg and reads one ack per message, so a batch must fit
// the socket buffers (bigBuffers). Each commit costs an RCU grace period
// (~25 ms here), so transactions are few and large: measured, chunks of 200
// took 5.5 s for 20,000 chains.
const nftChunk = 4000

// bigBuffers enlarges the netlink socket's buffers past rmem_max (root
// only: SO_RCVBUFFORCE) and asks for acks without the request echoed.
func bigBuffers(c *netlink.Conn) error {
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		return err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 32<<20))
	})
	return errors.Join(err, serr)
}

// deleteNftChains flushes and deletes chains of an iptables-nft backend
// through netlink: first every flush (owned chains jump to each other),
// then every delete, in transactions of nftChunk chains. Not one
// transaction for all, but nothing outside the batch refers to these
// chains (keepReferenced), so a partial result is a state the next run
// finishes. Measured: iptables-nft-restore needs 4.5 s for -F/-X of 20,000
// chains.
func deleteNftChains(b Backend, chains []tableChain) error {
	conn, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		return fmt.Errorf("open nf_tables netlink for %s: %w", b, err)
	}
	defer conn.CloseLasting()
	obj := func(tc tableChain) *nftables.Chain {
		return &nftables.Chain{Name: tc.chain, Table: &nftables.Table{Name: tc.table, Family: nftFamily(b)}}
	}
	for _, op := range []func(*nftables.Chain){conn.FlushChain, conn.DelChain} {
		for i := 0; i < len(chains); i += nftChunk {
			for _, tc := range chains[i:min(i+nftChunk, len(chains))] {
				op(obj(tc))
			}
			if err := conn.Flush(); err != nil {
				return fmt.Errorf("flush and delete %d %s chains: %w", len(chains), b, err)
			}
		}
	}
	return nil
}
