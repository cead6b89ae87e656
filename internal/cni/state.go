package cni

import (
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// ResultOf returns the network a libcni cached result file belongs to, from
// its JSON "networkName", or for an older file without one, the part of
// the name before "-<64-hex container ID>-<ifname>". "" when neither says.
func ResultOf(name string, data []byte) string {
	var r struct {
		NetworkName string `json:"networkName"`
	}
	if json.Unmarshal(data, &r) == nil && r.NetworkName != "" {
		return r.NetworkName
	}
	parts := strings.Split(name, "-")
	for i := 1; i+1 < len(parts); i++ {
		if isContainerID(parts[i]) {
			return strings.Join(parts[:i], "-")
		}
	}
	return ""
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validNetName keeps a network name from walking out of LibDir.
func validNetName(n string) bool {
	return n != "" && n != "." && n != ".." && !strings.ContainsRune(n, '/')
}

func isRegular(h *host.Host, p string) bool {
	fi, err := lstatResolved(h, p)
	return err == nil && fi.Mode().IsRegular()
}

func isDir(h *host.Host, p string) bool {
	fi, err := lstatResolved(h, p)
	return err == nil && fi.IsDir()
}

// lstatResolved follows links in the parents (inside the root) but not in
// the last component.
func lstatResolved(h *host.Host, p string) (fs.FileInfo, error) {
	full, err := seenPath(h, p)
	if err != nil {
		return nil, err
	}
	return os.Lstat(full)
}

func seenPath(h *host.Host, p string) (string, error) {
	dir, err := h.Resolve(filepath.Dir(p))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(p)), nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// detailOf recovers an item's Detail, also from a plan read back from JSON.
func detailOf(it plan.Item) Detail {
	d, _ := plan.DetailAs[Detail](it)
	return d
}

func logger(env *engine.Env) *slog.Logger {
	if env != nil && env.Log != nil {
		return env.Log
	}
	return slog.New(slog.DiscardHandler)
}
