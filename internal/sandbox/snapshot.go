package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/pkg/host"
)

// TakeSnapshot lists, sorted, every path under root (type and mode, size and
// SHA-256 of files, link targets), the mounts under root and every process
// but the caller. Two snapshots are equal exactly when none of that changed;
// times are left out on purpose, reading a file may update them. It must
// run inside the sandbox (nodesim snapshot-inside).
func TakeSnapshot(root string) (string, error) {
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		line := fmt.Sprintf("path %s %v", rel, fi.Mode())
		switch {
		case fi.Mode().IsRegular() && isNsfs(p):
			// A namespace bind-mounted on a file (/run/netns/cni-*) cannot
			// be read; which namespace it is, is what it holds.
			line += fmt.Sprintf(" nsfs %d", sysIno(fi))
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %d %s", len(b), digest(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + t
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("walk %s: %w", root, err)
	}
	ms, err := mountinfo.GetMounts(nil)
	if err != nil {
		return "", err
	}
	for _, m := range ms {
		if host.Under(m.Mountpoint, root) {
			rel := "/" + strings.TrimPrefix(strings.TrimPrefix(m.Mountpoint, root), "/")
			lines = append(lines, fmt.Sprintf("mount %s %s %s %s", rel, m.FSType, m.Source, m.Root))
		}
	}
	procs, err := processes()
	if err != nil {
		return "", err
	}
	sort.Strings(lines)
	return strings.Join(append(lines, procs...), "\n") + "\n", nil
}

// isNsfs reports whether p is a namespace file (nsfs) bind-mounted there.
func isNsfs(p string) bool {
	var st unix.Statfs_t
	return unix.Statfs(p, &st) == nil && st.Type == unix.NSFS_MAGIC
}

func sysIno(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// processes lists every process but this one, by PID.
func processes() ([]string, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	var out []string
	for _, pid := range pids {
		if !procAlive("/proc", pid) {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		out = append(out, fmt.Sprintf("proc %d %s %q", pid, exe, procArgv("/proc", pid)))
	}
	return out, nil
}
