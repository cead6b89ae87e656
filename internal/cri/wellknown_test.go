package cri

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/host"
)

// TestEndpointsWellKnown: every well-known socket that exists is looked at
// whatever the profile says, one socket under two names (a hard link, the
// /var/run link) is one endpoint that keeps its strongest source, and a
// well-known path that is no socket is not.
func TestEndpointsWellKnown(t *testing.T) {
	const (
		ctrd = "/run/containerd/containerd.sock"
		k3s  = "/run/k3s/containerd/containerd.sock"
		crio = "/run/crio/crio.sock"
	)
	tests := []struct {
		name     string
		sockets  []string          // real sockets to create
		links    map[string]string // hard link -> existing socket
		files    []string          // regular files at well-known paths
		profile  []string
		explicit []string
		want     string // HostPath, ! for explicit, ? for a guess
	}{
		{name: "none", want: ""},
		{name: "guess", sockets: []string{ctrd}, want: ctrd + "?"},
		{name: "k3s profile, system containerd", sockets: []string{ctrd}, profile: []string{k3s}, want: k3s + " " + ctrd + "?"},
		{name: "profile names it", sockets: []string{ctrd}, profile: []string{ctrd}, want: ctrd},
		{name: "flag names it", sockets: []string{ctrd}, explicit: []string{"unix://" + ctrd}, want: ctrd + "!"},
		{name: "hard link", sockets: []string{ctrd}, links: map[string]string{k3s: ctrd}, profile: []string{k3s}, want: k3s},
		{name: "several", sockets: []string{ctrd, crio, k3s}, want: ctrd + "? " + k3s + "? " + crio + "?"},
		{name: "not a socket", files: []string{ctrd}, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			mkdir := func(p string) {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			mkdir("/run/x")
			if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../run", filepath.Join(root, "var/run")); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.sockets {
				mkdir(s)
				l, err := net.Listen("unix", filepath.Join(root, s))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
			}
			for link, to := range tc.links {
				mkdir(link)
				if err := os.Link(filepath.Join(root, to), filepath.Join(root, link)); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tc.files {
				mkdir(f)
				if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			h, err := host.New(root)
			if err != nil {
				t.Fatal(err)
			}
			r := &runtime{opts: Options{Sockets: tc.profile, Explicit: tc.explicit}.withDefaults()}
			eps, err := r.endpoints(h)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range eps {
				s := e.HostPath
				if e.Explicit {
					s += "!"
				}
				if e.Guess {
					s += "?"
				}
				got = append(got, s)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("endpoints %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

// TestListeningUnix: only listening sockets bound to a path count.
func TestListeningUnix(t *testing.T) {
	const table = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 101 /run/containerd/containerd.sock
0000000000000000: 00000002 00000000 00010000 0001 01 102 /run/containerd/containerd.sock.ttrpc
0000000000000000: 00000003 00000000 00000000 0001 03 103 /run/containerd/containerd.sock
0000000000000000: 00000002 00000000 00010000 0001 01 104 @/containerd-shim/abc.sock
0000000000000000: 00000002 00000000 00000000 0001 03 105
0000000000000000: 00000002 00000000 00010000 0001 01 106 /run/with space.sock
`
	got := listeningUnix(bufio.NewScanner(strings.NewReader(table)))
	want := []unixSocket{{"101", "/run/containerd/containerd.sock"}, {"102", "/run/containerd/containerd.sock.ttrpc"}, {"106", "/run/with space.sock"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("socket %d: %v, want %v", i, got[i], want[i])
		}
	}
}
