package firewall

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Backend is one iptables backend of one address family: the legacy
// (x_tables) and nft (nf_tables with xt compat) backends keep separate
// rules, and a node can have both (kube-proxy and the CNI may disagree).
type Backend struct {
	// Family is "ip4" or "ip6".
	Family string
	// Name is "nft" or "legacy".
	Name string
}

// String is the prefix of every item target: "ip4/nft".
func (b Backend) String() string { return b.Family + "/" + b.Name }

func (b Backend) tool() string {
	if b.Family == "ip6" {
		return "ip6tables-" + b.Name
	}
	return "iptables-" + b.Name
}

// SaveCommand and RestoreCommand are the programs reading and writing the
// backend (iptables 1.8 names, e.g. ip6tables-legacy-save).
func (b Backend) SaveCommand() string    { return b.tool() + "-save" }
func (b Backend) RestoreCommand() string { return b.tool() + "-restore" }

// fileName is the backup file of the backend's rules.
func (b Backend) fileName() string { return b.Family + "-" + b.Name + ".rules" }

// AllBackends lists every backend×family, nft first (the default backend
// of current distributions).
func AllBackends() []Backend {
	return []Backend{{"ip4", "nft"}, {"ip6", "nft"}, {"ip4", "legacy"}, {"ip6", "legacy"}}
}

// Runner runs one program with stdin and returns its stdout. It is the
// only way this package changes the host, so tests can record it.
type Runner interface {
	Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error)
	// Has reports whether the program exists.
	Has(name string) bool
}

// CommandError is a failed iptables/nft command with what it printed.
type CommandError struct {
	Command string
	Output  string
	Err     error
}

func (e *CommandError) Error() string {
	out := strings.TrimSpace(e.Output)
	if out == "" {
		return fmt.Sprintf("%s: %v", e.Command, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Command, e.Err, out)
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExecRunner runs programs from PATH in nodereset's own network namespace.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.Bytes(), &CommandError{Command: name + " " + strings.Join(args, " "), Output: errb.String(), Err: err}
	}
	return out.Bytes(), nil
}

// Has implements Runner.
func (ExecRunner) Has(name string) bool { _, err := exec.LookPath(name); return err == nil }

// waitSeconds bounds iptables' wait for the xtables lock that another
// writer (a surviving kube-proxy, firewalld) may hold.
const waitSeconds = "5"

// save reads a backend; a backend whose programs are not installed has no
// tables.
func save(ctx context.Context, run Runner, b Backend) ([]Table, []byte, bool, error) {
	return saveWanted(ctx, run, b, nil)
}

// saveWanted is save keeping only the wanted chains' rules.
func saveWanted(ctx context.Context, run Runner, b Backend, want wantRules) ([]Table, []byte, bool, error) {
	if !run.Has(b.SaveCommand()) {
		return nil, nil, false, nil
	}
	out, err := run.Run(ctx, b.SaveCommand(), nil, nil)
	if err != nil {
		return nil, nil, true, fmt.Errorf("read %s rules: %w", b, err)
	}
	tables, err := parseSave(bytes.NewReader(out), want)
	if err != nil {
		return nil, out, true, fmt.Errorf("parse %s output: %w (please report this with the output attached)", b.SaveCommand(), err)
	}
	return tables, out, true, nil
}

// restore feeds a script to the backend's restore program without flushing
// anything it does not name.
func restore(ctx context.Context, run Runner, b Backend, script []byte) error {
	_, err := run.Run(ctx, b.RestoreCommand(), []string{"--noflush", "-w", waitSeconds}, script)
	return err
}
