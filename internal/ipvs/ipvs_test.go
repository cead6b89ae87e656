package ipvs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
)

// This kernel is built without IPVS (CONFIG_IP_VS): the selection is tested
// against a recorded service list instead of live services.
func TestSelect(t *testing.T) {
	b, err := os.ReadFile("testdata/services.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		VIPs     []netip.Addr `json:"vips"`
		Services []Service    `json:"services"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	vips := map[netip.Addr]bool{}
	for _, v := range rec.VIPs {
		vips[v] = true
	}
	tests := []struct {
		name  string
		vips  map[netip.Addr]bool
		cidrs []string
		want  string
	}{
		{"kube-ipvs0 addresses only", vips, nil,
			"tcp/10.96.0.1:443 udp/10.96.0.10:53 tcp/10.96.0.10:53 tcp/192.168.1.240:80 tcp/[fd00:10:96::1]:443"},
		{"service CIDR only (kube-ipvs0 gone)", nil, []string{"10.96.0.0/12", "fd00:10:96::/112"},
			"tcp/10.96.0.1:443 udp/10.96.0.10:53 tcp/10.96.0.10:53 tcp/10.97.12.4:8080 tcp/[fd00:10:96::1]:443"},
		{"neither: keepalived's services stay", nil, nil, ""},
		{"a CIDR that is not the cluster's", nil, []string{"10.100.0.0/16"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cidrs []netip.Prefix
			for _, c := range tc.cidrs {
				cidrs = append(cidrs, netip.MustParsePrefix(c))
			}
			var got []string
			for _, it := range Select(rec.Services, tc.vips, cidrs) {
				got = append(got, it.Target)
				if strings.HasPrefix(it.Target, "tcp/192.168.1.100") || strings.HasPrefix(it.Target, "fwmark") {
					t.Errorf("keepalived's service selected: %s", it.Target)
				}
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("got  %s\nwant %s", g, tc.want)
			}
		})
	}
}

func TestBadCIDR(t *testing.T) {
	h, _ := host.New(t.TempDir())
	env := &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := New(Options{ServiceCIDRs: []string{"10.96.0.0/33"}}).Discover(context.Background(), env); err == nil || !strings.Contains(err.Error(), "10.96.0.0/33") {
		t.Errorf("err %v, want one naming the CIDR", err)
	}
}

// TestDiscoverWithoutIPVS: in a fresh netns of this kernel (no IPVS),
// Discover returns no items and no error.
func TestDiscoverWithoutIPVS(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	if available() {
		t.Skip("this kernel has IPVS; the absent case cannot be shown here")
	}
	h, _ := host.New(t.TempDir())
	env := &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	items, err := New(Options{ServiceCIDRs: []string{"10.96.0.0/12"}}).Discover(context.Background(), env)
	if err != nil || len(items) != 0 {
		t.Errorf("Discover = %v, %v; want nothing", items, err)
	}
}
