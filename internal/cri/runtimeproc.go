package cri

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// RuntimeProcess is a container runtime, or one of its shims, found among
// the processes that hold a file. Stopping it would stop every container it
// runs, Kubernetes' or not: what holds Kubernetes' files there are pods that
// were not removed through it.
type RuntimeProcess struct {
	PID int
	// Name is the runtime's executable name (containerd, crio, cri-dockerd,
	// containerd-shim-runc-v2).
	Name string
	// Socket is its CRI socket as the process names it ("" if not known):
	// the one it listens on, or a shim's -address.
	Socket string
}

// runtimeNames are the executable names of CRI runtimes. K3s and RKE2 run
// their containerd from a multi-call binary under this name, so the
// process's comm is compared as well as its executable.
func runtimeNames() []string { return []string{"containerd", "crio", "cri-dockerd"} }

// RuntimeOf reports whether pid (under proc) is a CRI runtime or a
// containerd shim, by its executable's or comm's exact name.
func RuntimeOf(proc string, pid int) (RuntimeProcess, bool) {
	dir := filepath.Join(proc, strconv.Itoa(pid))
	exe, _ := os.Readlink(filepath.Join(dir, "exe"))
	b, _ := os.ReadFile(filepath.Join(dir, "comm"))
	comm := strings.TrimSpace(string(b))
	if IsShimExe(exe) {
		rp := RuntimeProcess{PID: pid, Name: filepath.Base(strings.TrimSuffix(exe, " (deleted)"))}
		if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
			rp.Socket = strings.TrimPrefix(ShimFlags(strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00"))["address"], "unix://")
		}
		return rp, true
	}
	names := runtimeNames()
	var name string
	switch base := filepath.Base(strings.TrimSuffix(exe, " (deleted)")); {
	case slices.Contains(names, comm):
		name = comm
	case exe != "" && slices.Contains(names, base):
		name = base
	default:
		return RuntimeProcess{}, false
	}
	return RuntimeProcess{PID: pid, Name: name, Socket: listeningCRISocket(dir)}, true
}

// listeningCRISocket is the unix socket the process listens on whose name
// is a well-known CRI socket's (containerd.sock, crio.sock,
// cri-dockerd.sock), wherever it lies; containerd's ttrpc and debug
// sockets are not CRI.
func listeningCRISocket(dir string) string {
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(filepath.Join(dir, "fd"))
	for _, fd := range fds {
		t, _ := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if ino, ok := strings.CutPrefix(t, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	var bases []string
	for _, s := range WellKnownSockets() {
		bases = append(bases, filepath.Base(s))
	}
	f, err := os.Open(filepath.Join(dir, "net", "unix"))
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, s := range listeningUnix(bufio.NewScanner(f)) {
		if inodes[s.inode] && slices.Contains(bases, filepath.Base(s.path)) {
			return s.path
		}
	}
	return ""
}

type unixSocket struct{ inode, path string }

// listeningUnix parses /proc/PID/net/unix ("Num RefCount Protocol Flags
// Type St Inode Path") for listening sockets bound to a path.
func listeningUnix(sc *bufio.Scanner) []unixSocket {
	const acceptCon = 0x10000 // __SO_ACCEPTCON: the socket listens
	var out []unixSocket
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || !strings.HasPrefix(f[7], "/") {
			continue // the header, unbound or abstract sockets
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&acceptCon == 0 {
			continue
		}
		out = append(out, unixSocket{inode: f[6], path: strings.Join(f[7:], " ")})
	}
	return out
}
