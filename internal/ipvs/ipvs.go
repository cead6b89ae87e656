// Package ipvs removes the IPVS virtual services kube-proxy's IPVS mode
// created (kind "ipvs-service"): only those whose address is a Service VIP
// — bound to the kube-ipvs0 device or inside a Service CIDR. keepalived's
// and any other LVS services stay (a global `ipvsadm -C` would drop them).
package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// DefaultDevice is the dummy device kube-proxy binds every Service VIP to.
const DefaultDevice = "kube-ipvs0"

// Options say which virtual services are Kubernetes Services.
type Options struct {
	// ServiceCIDRs are the cluster's Service CIDRs (profile, kube-proxy
	// config or --service-cidr). A service inside one is owned.
	ServiceCIDRs []string
	// Device is kube-proxy's dummy device (default kube-ipvs0): a service
	// on an address bound to it is owned.
	Device string
}

// Kind is the "ipvs-service" kind.
type Kind struct {
	opts  Options
	cidrs []netip.Prefix
	bad   error
}

// New returns the kind; an unparsable CIDR is reported by Discover.
func New(o Options) *Kind {
	if o.Device == "" {
		o.Device = DefaultDevice
	}
	k := &Kind{opts: o}
	for _, c := range o.ServiceCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			k.bad = errors.Join(k.bad, fmt.Errorf("service CIDR %q: %w", c, err))
			continue
		}
		k.cidrs = append(k.cidrs, p.Masked())
	}
	return k
}

var _ engine.Kind = (*Kind)(nil)

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindIPVS }

// Service is a virtual service as the selection sees it.
type Service struct {
	Address  netip.Addr `json:"address"`
	Protocol uint16     `json:"protocol"`
	Port     uint16     `json:"port"`
	FWMark   uint32     `json:"fwmark,omitempty"`
	Family   uint16     `json:"family"`
}

// Target is "tcp/10.96.0.1:443" ("fwmark/0x1234" for a mark service).
func (s Service) Target() string {
	if s.FWMark != 0 {
		return "fwmark/" + strconv.FormatUint(uint64(s.FWMark), 16)
	}
	return protoName(s.Protocol) + "/" + netip.AddrPortFrom(s.Address, s.Port).String()
}

func protoName(p uint16) string {
	switch p {
	case syscall.IPPROTO_TCP:
		return "tcp"
	case syscall.IPPROTO_UDP:
		return "udp"
	case syscall.IPPROTO_SCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// Select returns the services that are Kubernetes Services: address bound
// to kube-proxy's device (vips) or inside a Service CIDR. Firewall-mark
// services are never kube-proxy's (it does not create them).
func Select(svcs []Service, vips map[netip.Addr]bool, cidrs []netip.Prefix) []plan.Item {
	var items []plan.Item
	for _, s := range svcs {
		if s.FWMark != 0 || !s.Address.IsValid() {
			continue
		}
		reason := ""
		if vips[s.Address.Unmap()] {
			reason = "address bound to " + DefaultDevice
		}
		for _, c := range cidrs {
			if reason == "" && c.Contains(s.Address.Unmap()) {
				reason = "address in the Service CIDR " + c.String()
			}
		}
		if reason != "" {
			items = append(items, plan.Item{Kind: plan.KindIPVS, Target: s.Target(), Action: plan.ActionRemove, Reason: reason, Detail: s})
		}
	}
	return items
}

// available reports whether the kernel has IPVS, without moby/ipvs's own
// probe (which runs modprobe and logs through logrus when it is absent).
func available() bool {
	_, err := netlink.GenlFamilyGet("IPVS")
	return err == nil
}

// Discover implements engine.Kind. A kernel without IPVS has no services:
// no items and no error.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	if k.bad != nil {
		return nil, k.bad
	}
	if !available() {
		env.Log.Debug("IPVS is not available in this kernel: no virtual services to remove")
		return nil, nil
	}
	h, err := ipvs.New("")
	if err != nil {
		return nil, fmt.Errorf("open IPVS netlink: %w", err)
	}
	defer h.Close()
	raw, err := h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("list IPVS services: %w", err)
	}
	svcs := make([]Service, 0, len(raw))
	for _, s := range raw {
		a, _ := netip.AddrFromSlice(s.Address)
		svcs = append(svcs, Service{Address: a.Unmap(), Protocol: s.Protocol, Port: s.Port, FWMark: s.FWMark, Family: s.AddressFamily})
	}
	return Select(svcs, k.deviceVIPs(env), k.cidrs), nil
}

// deviceVIPs are the addresses bound to kube-proxy's device, if it exists.
func (k *Kind) deviceVIPs(env *engine.Env) map[netip.Addr]bool {
	vips := map[netip.Addr]bool{}
	l, err := netlink.LinkByName(k.opts.Device)
	if err != nil {
		return vips
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		env.Log.Warn("cannot list the addresses of "+k.opts.Device+"; only Service CIDRs select IPVS services", "err", err)
		return vips
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			vips[ip.Unmap()] = true
		}
	}
	return vips
}

// Apply implements engine.Kind: one DelService per item over one netlink
// handle; a service already gone is done.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	if len(items) == 0 {
		return
	}
	var h *ipvs.Handle
	var err error
	if !available() {
		err = errors.New("IPVS is not available in this kernel")
	} else if h, err = ipvs.New(""); err == nil {
		defer h.Close()
	}
	for _, it := range items {
		s, ok := serviceOf(it)
		switch {
		case err != nil:
			rec.Done(it, fmt.Errorf("IPVS service %s: %w", it.Target, err))
		case !ok:
			rec.Done(it, fmt.Errorf("IPVS service %s: item has no service detail: run plan again", it.Target))
		default:
			rec.Start(it)
			rec.Done(it, del(h, s))
		}
	}
}

func del(h *ipvs.Handle, s Service) error {
	svc := &ipvs.Service{Address: net.IP(s.Address.AsSlice()), Protocol: s.Protocol, Port: s.Port, AddressFamily: s.Family}
	if !h.IsServicePresent(svc) {
		return nil
	}
	if err := h.DelService(svc); err != nil {
		return fmt.Errorf("delete IPVS service %s: %w (ipvsadm -D -t/-u ADDR:PORT removes it by hand)", s.Target(), err)
	}
	return nil
}

// serviceOf recovers an item's Service, also from a plan read back from JSON.
func serviceOf(it plan.Item) (Service, bool) {
	s, ok := plan.DetailAs[Service](it)
	return s, ok && s.Address.IsValid()
}
