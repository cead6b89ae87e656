package firewall

import (
	"bytes"
	"fmt"
)

// script is, per table in first-seen order, "-D" of every rule, then "-F"
// of every chain (owned chains jump to each other, so all are emptied
// before the first -X), then "-X" of each, and one COMMIT. AdminChain is
// never flushed: if someone filled it since the plan, its -X fails the
// table's commit, and the fallback read keeps it.
func script(rules []ruleWork, chains []chainWork) []byte {
	type tbl struct{ dels, chains []string }
	var order []string
	byTable := map[string]*tbl{}
	get := func(name string) *tbl {
		t := byTable[name]
		if t == nil {
			t = &tbl{}
			byTable[name] = t
			order = append(order, name)
		}
		return t
	}
	for _, r := range rules {
		t := get(r.d.Table)
		t.dels = append(t.dels, r.d.Chain+" "+r.d.Spec)
	}
	for _, c := range chains {
		t := get(c.d.Table)
		t.chains = append(t.chains, c.d.Chain)
	}
	var s bytes.Buffer
	for _, name := range order {
		t := byTable[name]
		fmt.Fprintf(&s, "*%s\n", name)
		for _, d := range t.dels {
			fmt.Fprintf(&s, "-D %s\n", d)
		}
		for _, c := range t.chains {
			if c != AdminChain {
				fmt.Fprintf(&s, "-F %s\n", c)
			}
		}
		for _, c := range t.chains {
			fmt.Fprintf(&s, "-X %s\n", c)
		}
		s.WriteString("COMMIT\n")
	}
	return s.Bytes()
}
