package procs

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Listener is a LISTEN socket on one of the asked ports and the process that
// holds it. PID 0 means no process visible in proc holds the socket (a
// kernel socket, or one in flight between processes): the port is still in
// use.
type Listener struct {
	PID  int
	Comm string
	// Exe is the /proc/PID/exe link text as nodereset sees it.
	Exe   string
	IP    netip.Addr
	Port  int
	Inode uint64
	// NetNS is the /proc/PID/ns/net link text ("net:[4026531840]") of the
	// network namespace the socket lives in.
	NetNS string
}

// Listeners returns who holds LISTEN sockets (TCP, IPv4 and IPv6) on exactly
// the given ports, in every network namespace a process in proc uses. Each
// namespace's socket table is read once, through the first of its processes
// that can still be read. Processes that exit during the scan are skipped.
func Listeners(proc string, ports []int) ([]Listener, error) {
	pids, err := ListPIDs(proc)
	if err != nil {
		return nil, err
	}
	byNS := map[string][]int{}
	var order []string
	for _, pid := range pids {
		ns, err := os.Readlink(filepath.Join(pidDir(proc, pid), "ns", "net"))
		if err != nil {
			// Gone, or a kernel thread without a readable namespace link.
			continue
		}
		if _, ok := byNS[ns]; !ok {
			order = append(order, ns)
		}
		byNS[ns] = append(byNS[ns], pid)
	}
	var out []Listener
	var errs []error
	for _, ns := range order {
		ls, err := nsListeners(proc, ns, byNS[ns], ports)
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, ls...)
	}
	return out, errors.Join(errs...)
}

// nsListeners handles one network namespace and the PIDs that use it.
func nsListeners(proc, ns string, pids []int, ports []int) ([]Listener, error) {
	var socks []Socket
	read := false
	var lastErr error
	for _, pid := range pids {
		s, err := readTCPTables(filepath.Join(pidDir(proc, pid), "net"))
		if err != nil {
			lastErr = err
			continue
		}
		socks, read = s, true
		break
	}
	if !read {
		if lastErr != nil && vanished(lastErr) {
			return nil, nil // every process of the namespace exited
		}
		return nil, fmt.Errorf("network namespace %s: %w", ns, lastErr)
	}
	want := map[uint64]Socket{}
	for _, s := range Listening(socks) {
		if slices.Contains(ports, s.LocalPort) {
			want[s.Inode] = s
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	var out []Listener
	held := map[uint64]bool{}
	for _, pid := range pids {
		for _, ino := range socketInodes(proc, pid) {
			s, ok := want[ino]
			if !ok {
				continue
			}
			held[ino] = true
			exe, _ := readExe(proc, pid)
			out = append(out, Listener{PID: pid, Comm: readComm(proc, pid), Exe: exe,
				IP: s.LocalIP, Port: s.LocalPort, Inode: ino, NetNS: ns})
		}
	}
	for ino, s := range want {
		if !held[ino] {
			out = append(out, Listener{IP: s.LocalIP, Port: s.LocalPort, Inode: ino, NetNS: ns})
		}
	}
	return out, nil
}

// readTCPTables reads tcp and tcp6 of one net directory. A missing tcp6
// (IPv6 disabled) is not an error.
func readTCPTables(netDir string) ([]Socket, error) {
	var all []Socket
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(netDir, name))
		if err != nil {
			if name == "tcp6" && errors.Is(err, os.ErrNotExist) {
				if _, serr := os.Stat(netDir); serr == nil {
					continue
				}
			}
			return nil, err
		}
		s, err := ParseNetTCP(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
		all = append(all, s...)
	}
	return all, nil
}

// socketInodes returns the inodes of the sockets a process holds open; a
// process that exits or hides its fds yields none.
func socketInodes(proc string, pid int) []uint64 {
	dir := filepath.Join(pidDir(proc, pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []uint64
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		n, ok := strings.CutPrefix(l, "socket:[")
		if !ok || !strings.HasSuffix(n, "]") {
			continue
		}
		if ino, err := strconv.ParseUint(strings.TrimSuffix(n, "]"), 10, 64); err == nil {
			out = append(out, ino)
		}
	}
	return out
}
