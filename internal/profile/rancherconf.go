package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/nodereset/nodereset/pkg/host"
)

// rancherConfig is a K3s or RKE2 config.yaml with its config.yaml.d/*.yaml
// drop-ins applied the way K3s applies them: files in lexical order, a
// later file's key replaces an earlier one, and a key ending in "+"
// appends to the list of the key without it.
type rancherConfig struct {
	values map[string]any
	// Files are the config files read, in order.
	Files []string
}

// readRancherConfig reads path and path.d/*.yaml (.yml); absent files are
// no error.
func readRancherConfig(h *host.Host, path string) (rancherConfig, error) {
	c := rancherConfig{values: map[string]any{}}
	files := []string{path}
	if ents, err := os.ReadDir(resolveOr(h, path+".d")); err == nil {
		var names []string
		for _, e := range ents {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, filepath.Join(path+".d", n))
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(resolveOr(h, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return c, fmt.Errorf("read %s: %w", f, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return c, fmt.Errorf("%s: %w (K3s/RKE2 would refuse it too; fix it)", f, err)
		}
		c.Files = append(c.Files, f)
		c.apply(m)
	}
	return c, nil
}

func (c *rancherConfig) apply(m map[string]any) {
	for k, v := range m {
		if base, ok := strings.CutSuffix(k, "+"); ok {
			c.values[base] = append(toStrings(c.values[base]), toStrings(v)...)
			continue
		}
		c.values[k] = v
	}
}

// String is a scalar setting, "" when unset.
func (c rancherConfig) String(key string) string {
	switch v := c.values[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// Strings is a list setting; a scalar counts as a one-element list, as K3s
// accepts both.
func (c rancherConfig) Strings(key string) []string { return toStrings(c.values[key]) }

func toStrings(v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	default:
		return []string{fmt.Sprint(v)}
	}
}
