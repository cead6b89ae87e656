package procs

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func littleEndian(t testing.TB) {
	t.Helper()
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	if b[0] != 1 {
		t.Skip("fixtures are /proc/net/tcp of a little-endian machine")
	}
}

func TestParseNetTCP(t *testing.T) {
	littleEndian(t)
	a := netip.MustParseAddr
	tests := []struct {
		file    string
		want    []Socket
		wantErr string
	}{
		{file: "tcp4.txt", want: []Socket{
			{a("0.0.0.0"), 10250, StateListen, 1067},
			{a("127.0.0.1"), 8080, StateListen, 2001},
			{a("127.0.0.1"), 80, 0x01, 2002},
			{a("10.0.2.15"), 10242, StateListen, 2003},
		}},
		{file: "tcp6.txt", want: []Socket{
			{a("::"), 10240, StateListen, 3001},
			{a("::1"), 80, StateListen, 3002},
			{a("::ffff:127.0.0.1"), 10264, StateListen, 3003},
			{a("fe80::a00:1"), 8080, 0x06, 0},
		}},
		{file: "header-only.txt"},
		{file: "header-late.txt", wantErr: "line 2"},
		{file: "bad-addr.txt", wantErr: "line 2 of TCP socket table: local address \"0100007F1F90\""},
		{file: "short.txt", wantErr: "want at least 10 fields, got 9"},
		{file: "bad-state.txt", wantErr: "state \"ZZ\""},
		{file: "bad-inode.txt", wantErr: "inode \"-5\""},
		{file: "bad-port.txt", wantErr: "port \"1F9\""},
		{file: "bad-hex.txt", wantErr: "address \"0100007G\""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseNetTCP(f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if got != nil {
					t.Fatalf("got sockets %v with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestListening(t *testing.T) {
	in := []Socket{{LocalPort: 1, State: StateListen}, {LocalPort: 2, State: 1}, {LocalPort: 3, State: StateListen}}
	got := Listening(in)
	if len(got) != 2 || got[0].LocalPort != 1 || got[1].LocalPort != 3 {
		t.Fatalf("Listening = %v, want ports 1 and 3", got)
	}
}

// TestParseNetTCPLive parses this machine's own tables: the format must
// never drift from what the running kernel prints.
func TestParseNetTCPLive(t *testing.T) {
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		t.Run(filepath.Base(name), func(t *testing.T) {
			f, err := os.Open(name)
			if err != nil {
				t.Skipf("no %s: %v", name, err)
			}
			defer f.Close()
			if _, err := ParseNetTCP(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func FuzzParseNetTCP(f *testing.F) {
	for _, name := range []string{"tcp4.txt", "tcp6.txt", "bad-addr.txt", "short.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, err := ParseNetTCP(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		for _, s := range socks {
			if !s.LocalIP.IsValid() || s.LocalPort < 0 || s.LocalPort > 65535 || s.State > 255 {
				t.Fatalf("invalid socket %+v", s)
			}
		}
	})
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, in string
		want     Stat
		wantErr  bool
	}{
		{"plain", "42 (kubelet) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 10 0 12345 100 5", Stat{'S', 1, 4194560, 12345}, false},
		{"paren in comm", "7 (a) b) (c) R 2 7 7 0 -1 2097216 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0", Stat{'R', 2, 2097216, 99}, false},
		{"comm ends in parens", "7 (a) b (c)) R 3 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0", Stat{'R', 3, 0, 99}, false},
		{"truncated", "7 (x) R 2 7", Stat{}, true},
		{"no comm", "7 x R", Stat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseStat = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
