// Package mounts finds the mounts Kubernetes left below its own directories
// (the kubelet root, k3s and RKE2 run directories) and unmounts them children
// first, so that a later removal never deletes through a live mount.
//
// Ownership is decided by exact path components of the decoded mountinfo
// mount point, never by matching text: /var/lib/kubelet-old is not below
// /var/lib/kubelet, and the root itself (possibly the host's own disk) is
// never selected.
package mounts

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// Mount is one line of a mountinfo file.
type Mount struct {
	ID     int
	Parent int
	// Point is the decoded mount point as nodereset sees it (with the
	// --host-root prefix when nodereset runs beside the host).
	Point   string
	FSType  string
	Source  string
	Options string
}

// maxLine bounds one mountinfo line. Overlay mounts with many layers have
// long super options; the kernel itself caps a line far below this.
const maxLine = 1 << 20

// mobyLine is the largest line handed to mountinfo.GetMountsFromReader, whose
// scanner stops at 64 KiB.
const mobyLine = 60 << 10

// Parse reads a mountinfo file. A malformed line fails the whole parse with
// an error naming the line, because acting on a partial mount table could
// unmount a parent before a child nobody saw.
func Parse(r io.Reader) ([]Mount, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var (
		lines []string
		nums  []int // line number of each kept line
		ids   [][2]int
		all   strings.Builder
		n     int
	)
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		id, parent, err := parseIDs(line)
		if err != nil {
			return nil, lineErr(n, line, err)
		}
		if len(line) > mobyLine {
			// Only the trailing super options can be this long; they are
			// not used, and the library cannot read a line this long.
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				line = line[:i+1] + "truncated"
			}
		}
		lines, nums, ids = append(lines, line), append(nums, n), append(ids, [2]int{id, parent})
		all.WriteString(line)
		all.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo after line %d: %w", n, err)
	}
	// One call for the whole table; only when it fails is each line parsed
	// alone to name the bad one.
	infos, err := mountinfo.GetMountsFromReader(strings.NewReader(all.String()), nil)
	if err == nil && len(infos) != len(lines) {
		err = fmt.Errorf("read %d mounts from %d lines", len(infos), len(lines))
	}
	if err != nil {
		for i, l := range lines {
			if _, lerr := mountinfo.GetMountsFromReader(strings.NewReader(l), nil); lerr != nil {
				return nil, lineErr(nums[i], l, lerr)
			}
		}
		return nil, fmt.Errorf("parse mountinfo: %w", err)
	}
	if len(infos) == 0 {
		return nil, nil
	}
	out := make([]Mount, len(infos))
	seen := make(map[int]int, len(infos))
	for i, in := range infos {
		if !strings.HasPrefix(in.Mountpoint, "/") || filepath.Clean(in.Mountpoint) != in.Mountpoint {
			return nil, lineErr(nums[i], lines[i], fmt.Errorf("mount point %q is not an absolute clean path", in.Mountpoint))
		}
		id := ids[i][0]
		if prev, dup := seen[id]; dup {
			return nil, lineErr(nums[i], lines[i], fmt.Errorf("mount ID %d already used on line %d", id, prev))
		}
		seen[id] = nums[i]
		out[i] = Mount{
			ID:      id,
			Parent:  ids[i][1],
			Point:   in.Mountpoint,
			FSType:  in.FSType,
			Source:  in.Source,
			Options: in.Options,
		}
	}
	return out, nil
}

func lineErr(n int, line string, err error) error {
	return fmt.Errorf("mountinfo line %d %q: %w", n, clip(line), err)
}

// parseIDs checks the two IDs: the library turns a bad number into 0, a
// valid-looking ID.
func parseIDs(line string) (id, parent int, err error) {
	f := strings.SplitN(line, " ", 3)
	if len(f) < 3 {
		return 0, 0, errors.New("not enough fields")
	}
	if id, err = parseID(f[0]); err != nil {
		return 0, 0, fmt.Errorf("mount ID: %w", err)
	}
	if parent, err = parseID(f[1]); err != nil {
		return 0, 0, fmt.Errorf("parent ID: %w", err)
	}
	return id, parent, nil
}

func parseID(s string) (int, error) {
	v, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("%q is not a mount ID", s)
	}
	return int(v), nil
}

func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// Select returns the mounts strictly below one of roots, in mountinfo order.
// Roots are paths as nodereset sees them. A mount at a root itself is not
// selected: it may be the disk the host keeps the directory on.
func Select(mounts []Mount, roots []string) []Mount {
	clean := cleanRoots(roots)
	var out []Mount
	for _, m := range mounts {
		if _, ok := below(m.Point, clean); ok {
			out = append(out, m)
		}
	}
	return out
}

func cleanRoots(roots []string) []string {
	out := make([]string, 0, len(roots))
	for _, r := range roots {
		// A relative root would match nothing a kernel reports; drop it
		// rather than guess what it is relative to.
		if strings.HasPrefix(r, "/") {
			out = append(out, filepath.Clean(r))
		}
	}
	return out
}

// below returns the first root that p lies strictly below, by whole path
// components. Roots must be clean and absolute.
func below(p string, roots []string) (string, bool) {
	for _, r := range roots {
		if p != r && atOrBelow(p, r) {
			return r, true
		}
	}
	return "", false
}

// atOrBelow reports whether clean absolute p equals dir or lies below it.
func atOrBelow(p, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}
