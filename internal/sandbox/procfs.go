package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStart returns the start time of pid (field 22 of /proc/PID/stat, clock
// ticks since boot) from the given procfs. It is the same number in every
// PID namespace, which is what makes PID+start an identity.
func procStart(proc string, pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", proc, pid))
	if err != nil {
		return 0, err
	}
	// comm (field 2) may hold spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s/%d/stat: no ')' in %q", proc, pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("%s/%d/stat: short line", proc, pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// procAlive reports whether pid exists and is not a zombie: a zombie has
// exited and only waits to be reaped, so it counts as gone.
func procAlive(proc string, pid int) bool {
	f, err := os.Open(fmt.Sprintf("%s/%d/status", proc, pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "State:"); ok {
			return !strings.HasPrefix(strings.TrimSpace(v), "Z")
		}
	}
	return false
}

// procArgv returns the NUL-separated command line of pid.
func procArgv(proc string, pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/cmdline", proc, pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}
