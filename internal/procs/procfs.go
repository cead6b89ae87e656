package procs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pfKthread is PF_KTHREAD in the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// deletedSuffix is what the kernel appends to /proc/PID/exe when the
// executable file was unlinked (replaced by a package upgrade, say).
const deletedSuffix = " (deleted)"

// Stat holds the fields of /proc/PID/stat that identify a process and its
// place in the process tree.
type Stat struct {
	State     byte
	PPID      int
	Flags     uint64
	StartTime uint64 // clock ticks after boot; with the PID it names one process
}

// ListPIDs returns the numeric entries of a procfs directory.
func ListPIDs(proc string) ([]int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", proc, err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func pidDir(proc string, pid int) string { return filepath.Join(proc, strconv.Itoa(pid)) }

// ReadStat parses /proc/PID/stat under the procfs proc. The command name
// (field 2) may hold spaces and parentheses, so the fields are counted
// after its last ')'.
func ReadStat(proc string, pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(pidDir(proc, pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (Stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("stat %q has no ')' after the command name", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("stat has %d fields after the command name, want at least 20", len(f))
	}
	ppid, err1 := strconv.Atoi(f[4-3])
	flags, err2 := strconv.ParseUint(f[9-3], 10, 64)
	start, err3 := strconv.ParseUint(f[22-3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Stat{}, fmt.Errorf("stat fields: %w", err)
	}
	return Stat{State: f[0][0], PPID: ppid, Flags: flags, StartTime: start}, nil
}

func readComm(proc string, pid int) string {
	b, err := os.ReadFile(filepath.Join(pidDir(proc, pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

func readExe(proc string, pid int) (string, error) {
	return os.Readlink(filepath.Join(pidDir(proc, pid), "exe"))
}

// selfPID is this process's PID as the given procfs numbers it, which
// differs from os.Getpid when proc shows another PID namespace.
func selfPID(proc string) int {
	if s, err := os.Readlink(filepath.Join(proc, "self")); err == nil {
		if pid, err := strconv.Atoi(s); err == nil {
			return pid
		}
	}
	return os.Getpid()
}

// vanished reports whether err means the process is gone (it exited while
// we were reading it).
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
}
