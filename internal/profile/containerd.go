package profile

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/nodereset/nodereset/pkg/host"
)

// Containerd is where a containerd keeps its data, read from its
// config.toml so that a custom root or state dir is honoured.
type Containerd struct {
	Root, State, Socket string
}

// k8sTaskDir is where containerd's runtime v2 keeps the tasks of the
// kubelet's namespace under its state dir.
func (c Containerd) k8sTaskDir() string {
	return c.State + "/io.containerd.runtime.v2.task/k8s.io"
}

// ReadContainerd reads root, state and [grpc] address from a containerd
// config.toml; absent settings (or an absent file) keep def's values.
func ReadContainerd(h *host.Host, configPath string, def Containerd) (Containerd, error) {
	b, err := os.ReadFile(resolveOr(h, configPath))
	if errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return def, fmt.Errorf("read containerd config %s: %w", configPath, err)
	}
	c, err := parseContainerdConfig(string(b), def)
	if err != nil {
		return def, fmt.Errorf("containerd config %s: %w", configPath, err)
	}
	return c, nil
}

// parseContainerdConfig reads the three keys it needs from TOML: top-level
// root and state, and address in [grpc]. Only basic string values are
// understood, which is how containerd and K3s write them.
func parseContainerdConfig(text string, def Containerd) (Containerd, error) {
	c := def
	table := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			table = strings.TrimSpace(strings.Trim(line, "[]"))
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), `"`)
		var dst *string
		switch {
		case table == "" && k == "root":
			dst = &c.Root
		case table == "" && k == "state":
			dst = &c.State
		case table == "grpc" && k == "address":
			dst = &c.Socket
		default:
			continue
		}
		s, err := tomlString(strings.TrimSpace(v))
		if err != nil {
			return def, fmt.Errorf("line %d: %s: %w", n, k, err)
		}
		*dst = s
	}
	return c, sc.Err()
}

// tomlString decodes a basic ("...") or literal ('...') TOML string,
// ignoring a trailing comment.
func tomlString(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, `"`):
		end := strings.Index(v[1:], `"`)
		for end >= 0 && v[end] == '\\' { // an escaped quote: keep looking
			next := strings.Index(v[end+2:], `"`)
			if next < 0 {
				end = -1
				break
			}
			end += next + 1
		}
		if end < 0 {
			return "", fmt.Errorf("unterminated string %s", v)
		}
		return strconv.Unquote(v[:end+2])
	case strings.HasPrefix(v, "'"):
		end := strings.Index(v[1:], "'")
		if end < 0 {
			return "", fmt.Errorf("unterminated string %s", v)
		}
		return v[1 : end+1], nil
	}
	return "", fmt.Errorf("want a string, got %s", v)
}
