package links

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// newHandle opens a route netlink socket in nodereset's network namespace
// (the host's) whose every request gives up after timeout.
func newHandle(timeout time.Duration) (*netlink.Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	if err := h.SetSocketTimeout(timeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("set netlink timeout: %w", err)
	}
	return h, nil
}

// dumpRetries bounds the retries of a dump the kernel reports as
// interrupted (links changed while it was read).
const dumpRetries = 5

// current is the links of the namespace, as attributes and as netlink sees
// them (for deleting by index).
type current struct {
	attrs  []Attrs
	byName map[string]netlink.Link
}

// readAttrs reads every link and address with one dump each.
func readAttrs(h *netlink.Handle) (current, error) {
	var (
		ls  []netlink.Link
		as  []netlink.Addr
		err error
	)
	for range dumpRetries {
		if ls, err = h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return current{}, fmt.Errorf("list links: %w", err)
	}
	for range dumpRetries {
		if as, err = h.AddrList(nil, netlink.FAMILY_ALL); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return current{}, fmt.Errorf("list addresses: %w", err)
	}
	addrs := map[int][]string{}
	for _, a := range as {
		addrs[a.LinkIndex] = append(addrs[a.LinkIndex], a.IPNet.String())
	}
	names := map[int]string{}
	for _, l := range ls {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	cur := current{byName: make(map[string]netlink.Link, len(ls))}
	for _, l := range ls {
		a := attrsOf(l, names)
		a.Addrs = addrs[a.Index]
		cur.attrs = append(cur.attrs, a)
		cur.byName[a.Name] = l
	}
	return cur, nil
}

func attrsOf(l netlink.Link, names map[int]string) Attrs {
	la := l.Attrs()
	a := Attrs{Name: la.Name, Index: la.Index, Kind: l.Type(), Up: la.Flags&net.FlagUp != 0}
	if la.MasterIndex > 0 {
		a.Master = names[la.MasterIndex]
	}
	switch v := l.(type) {
	case *netlink.Veth:
		a.PeerIndex = la.ParentIndex
		// IFLA_LINK_NETNSID is only sent when the peer is in another
		// namespace.
		a.PeerElsewhere = la.NetNsID >= 0
	case *netlink.Vxlan:
		a.VxlanID, a.Port, a.FlowBased = v.VxlanId, v.Port, v.FlowBased
	}
	return a
}
