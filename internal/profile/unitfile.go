package profile

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nodereset/nodereset/pkg/host"
)

// unitDirs are where systemd looks for unit files, highest precedence first.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
	"/lib/systemd/system", "/usr/lib/systemd/system"}

// unit is what a profile reads from one systemd service: its command line
// and environment after drop-ins, the way systemd assembles them. Only the
// settings that carry component flags are read.
type unit struct {
	Name string
	// File is the host path of the unit file; DropIns the applied drop-ins.
	File    string
	DropIns []string
	// ExecStart is the last ExecStart= value (raw); Env the environment
	// from Environment= then EnvironmentFile= (which overrides, as in
	// systemd).
	ExecStart string
	Env       map[string]string
	EnvFiles  []string
}

// findUnitFile returns the host path of a unit's file, or "".
func findUnitFile(h *host.Host, name string) string {
	for _, d := range unitDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(resolveOr(h, p)); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// resolveOr resolves a host path under the root, falling back to the
// lexical join (a path that cannot resolve then simply does not exist).
func resolveOr(h *host.Host, p string) string {
	if r, err := h.Resolve(p); err == nil {
		return r
	}
	return h.Path(p)
}

// readUnit reads a unit and its drop-ins; ok is false when there is no
// unit file. Drop-ins with one file name: the higher-precedence dir wins;
// they apply in file-name order.
func readUnit(h *host.Host, name string) (unit, bool, error) {
	u := unit{Name: name, Env: map[string]string{}}
	if u.File = findUnitFile(h, name); u.File == "" {
		return u, false, nil
	}
	byName := map[string]string{}
	for i := len(unitDirs) - 1; i >= 0; i-- {
		dir := filepath.Join(unitDirs[i], name+".d")
		ents, err := os.ReadDir(resolveOr(h, dir))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".conf") {
				byName[e.Name()] = filepath.Join(dir, e.Name())
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	files := []string{u.File}
	for _, n := range names {
		files = append(files, byName[n])
		u.DropIns = append(u.DropIns, byName[n])
	}
	var envAssign []string
	for _, f := range files {
		b, err := os.ReadFile(resolveOr(h, f))
		if err != nil {
			return u, false, fmt.Errorf("read unit file %s: %w", f, err)
		}
		for _, kv := range serviceSettings(string(b)) {
			switch kv[0] {
			case "ExecStart":
				u.ExecStart = kv[1]
			case "Environment":
				if kv[1] == "" {
					envAssign = nil
				} else {
					envAssign = append(envAssign, kv[1])
				}
			case "EnvironmentFile":
				if kv[1] == "" {
					u.EnvFiles = nil
				} else {
					u.EnvFiles = append(u.EnvFiles, kv[1])
				}
			}
		}
	}
	for _, a := range envAssign {
		words, err := splitWords(a)
		if err != nil {
			return u, false, fmt.Errorf("unit %s: Environment=%s: %w", name, a, err)
		}
		for _, w := range words {
			if k, v, ok := strings.Cut(w, "="); ok {
				u.Env[k] = v
			}
		}
	}
	for _, ef := range u.EnvFiles {
		optional := strings.HasPrefix(ef, "-")
		ef = strings.TrimPrefix(ef, "-")
		env, err := readEnvFile(h, ef)
		if errors.Is(err, fs.ErrNotExist) && optional {
			continue
		}
		if err != nil {
			return u, false, fmt.Errorf("unit %s: EnvironmentFile=%s: %w", name, ef, err)
		}
		for k, v := range env {
			u.Env[k] = v
		}
	}
	return u, true, nil
}

// Args returns the ExecStart command line with the unit's environment
// substituted: "$VAR" alone becomes the value's words, "${VAR}" one word.
func (u unit) Args() ([]string, error) {
	cmd := strings.TrimLeft(u.ExecStart, "@-:+!")
	words, err := splitWords(cmd)
	if err != nil {
		return nil, fmt.Errorf("unit %s: ExecStart: %w", u.Name, err)
	}
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
			out = append(out, strings.Fields(u.Env[w[1:]])...)
			continue
		}
		out = append(out, os.Expand(w, func(k string) string { return u.Env[k] }))
	}
	return out, nil
}

// serviceSettings returns the key/value pairs of a unit file's [Service]
// section in order, with continuation lines joined.
func serviceSettings(text string) [][2]string {
	var out [][2]string
	section := ""
	var cont strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cont.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		if cont.Len() > 0 {
			line = cont.String() + line
			cont.Reset()
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && section == "Service" {
			out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return out
}

// readEnvFile parses KEY=VALUE lines as systemd's EnvironmentFile= and
// /etc/default files hold them (quotes stripped, comments skipped).
func readEnvFile(h *host.Host, p string) (map[string]string, error) {
	b, err := os.ReadFile(resolveOr(h, p))
	if err != nil {
		return nil, err
	}
	return parseEnv(string(b)), nil
}

func parseEnv(text string) map[string]string {
	env := map[string]string{}
	// A trailing backslash continues the line, as systemd reads them
	// (Kubespray's kubelet.env relies on it).
	text = strings.ReplaceAll(text, "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if words, err := splitWords(v); err == nil && len(words) == 1 && (strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "'")) {
			v = words[0]
		}
		env[strings.TrimSpace(k)] = v
	}
	return env
}

// splitWords splits a command line into words the way systemd and sh do for
// plain quoting: '...' literal, "..." with backslash escapes, backslash
// outside quotes escapes the next character.
func splitWords(s string) ([]string, error) {
	var out []string
	var w strings.Builder
	in := false // inside a word
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				out, in = append(out, w.String()), false
				w.Reset()
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			w.WriteString(s[i+1 : i+1+j])
			i, in = i+1+j, true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			in = true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			in = true
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, w.String())
	}
	return out, nil
}
