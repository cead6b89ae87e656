package mounts

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Holder is a process that keeps a mount busy.
type Holder struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// Uses says how: "cwd", "root", "fd 3", "mmap".
	Uses []string `json:"uses"`
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%s) %s", h.PID, h.Comm, strings.Join(h.Uses, ", "))
}

// Holders scans proc for processes whose working directory, root, open files
// or mapped files are at or below point (a path as the links in proc show
// it). Processes that exit during the scan are skipped.
func Holders(proc, point string) ([]Holder, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("find holders of %s: %w", point, err)
	}
	point = filepath.Clean(point)
	var out []Holder
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		uses := holds(dir, point)
		if len(uses) == 0 {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		out = append(out, Holder{PID: pid, Comm: strings.TrimSpace(string(comm)), Uses: uses})
	}
	return out, nil
}

func holds(dir, point string) []string {
	var uses []string
	for _, l := range []string{"cwd", "root"} {
		if linkUnder(filepath.Join(dir, l), point) {
			uses = append(uses, l)
		}
	}
	fds, _ := os.ReadDir(filepath.Join(dir, "fd"))
	for _, fd := range fds {
		if linkUnder(filepath.Join(dir, "fd", fd.Name()), point) {
			uses = append(uses, "fd "+fd.Name())
		}
	}
	if mapsUnder(filepath.Join(dir, "maps"), point) {
		uses = append(uses, "mmap")
	}
	return uses
}

func linkUnder(link, point string) bool {
	t, err := os.Readlink(link)
	if err != nil || !strings.HasPrefix(t, "/") {
		// Sockets, pipes and anon inodes ("socket:[12]") hold no mount.
		return false
	}
	return atOrBelow(strings.TrimSuffix(t, " (deleted)"), point)
}

func mapsUnder(maps, point string) bool {
	f, err := os.Open(maps)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode pathname; the path is the rest of
		// the line after the fifth field and may contain spaces.
		line := sc.Text()
		i := strings.IndexByte(line, '/')
		if i < 0 {
			continue
		}
		if atOrBelow(strings.TrimSuffix(line[i:], " (deleted)"), point) {
			return true
		}
	}
	return false
}
