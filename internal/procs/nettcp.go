package procs

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// StateListen is the kernel's TCP_LISTEN state as /proc/net/tcp prints it
// (column "st", hex 0A).
const StateListen = 0x0A

// Socket is one row of /proc/net/tcp or /proc/net/tcp6.
type Socket struct {
	// LocalIP is the local address as the kernel holds it: a socket of
	// tcp6 bound to an IPv4 address shows as ::ffff:a.b.c.d (call Unmap to
	// compare it with IPv4 addresses).
	LocalIP   netip.Addr
	LocalPort int
	// State is the kernel's TCP state number (StateListen for LISTEN).
	State int
	// Inode is the socket inode that /proc/PID/fd links name as socket:[N].
	Inode uint64
}

// ParseNetTCP parses the content of /proc/net/tcp or /proc/net/tcp6. The
// header line is skipped; any other line that does not parse is an error
// naming its line number, since a half-read table would hide listeners.
func ParseNetTCP(r io.Reader) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || (n == 1 && fields[0] == "sl") {
			continue
		}
		s, err := parseTCPLine(fields)
		if err != nil {
			return nil, fmt.Errorf("line %d of TCP socket table: %w", n, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read TCP socket table: %w", err)
	}
	return out, nil
}

// Listening returns the sockets in state LISTEN.
func Listening(socks []Socket) []Socket {
	var out []Socket
	for _, s := range socks {
		if s.State == StateListen {
			out = append(out, s)
		}
	}
	return out
}

func parseTCPLine(f []string) (Socket, error) {
	// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
	if len(f) < 10 {
		return Socket{}, fmt.Errorf("want at least 10 fields, got %d", len(f))
	}
	if !strings.HasSuffix(f[0], ":") {
		return Socket{}, fmt.Errorf("slot %q does not end in ':'", f[0])
	}
	ip, port, err := parseHexAddr(f[1])
	if err != nil {
		return Socket{}, fmt.Errorf("local address %q: %w", f[1], err)
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return Socket{}, fmt.Errorf("state %q: %w", f[3], err)
	}
	ino, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return Socket{}, fmt.Errorf("inode %q: %w", f[9], err)
	}
	return Socket{LocalIP: ip, LocalPort: port, State: int(st), Inode: ino}, nil
}

// parseHexAddr decodes "0100007F:1F90". The kernel prints the address as
// 32-bit words in host byte order, so each word is decoded with the native
// byte order; the port is printed as a plain number.
func parseHexAddr(s string) (netip.Addr, int, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("no ':' between address and port")
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil || len(p) != 4 {
		return netip.Addr{}, 0, fmt.Errorf("port %q is not 4 hex digits", p)
	}
	if len(a) != 8 && len(a) != 32 {
		return netip.Addr{}, 0, fmt.Errorf("address %q has %d hex digits, want 8 or 32", a, len(a))
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("address %q: %w", a, err)
	}
	buf := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(buf[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	ip, _ := netip.AddrFromSlice(buf)
	return ip, int(port), nil
}
