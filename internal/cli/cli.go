// Package cli is nodereset's command line: one client of the library. Each
// command binds its flags to a private options struct and calls a run
// function; exit codes are decided in one place, Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// Exit codes, documented in --help.
const (
	ExitOK = 0
	// ExitResidue: reset left items failed, or verify found residue.
	ExitResidue = 1
	// ExitError: nodereset could not do or check the job (bad flags, an
	// unreadable host, a refused confirmation). Nothing was changed unless
	// the message says so.
	ExitError = 2
)

// Streams are the command's standard streams.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// Main runs nodereset with args and returns the process exit code.
func Main(ctx context.Context, args []string, s Streams) int {
	cmd := newRoot(s)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != errSilent {
			fmt.Fprintf(s.Err, "error: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(s.Err, "error: %v\n", err)
	return ExitError
}

// errSilent marks a failure that the command already explained.
var errSilent = errors.New("already reported")

const rootHelp = `nodereset takes a node out of a Kubernetes cluster and resets the machine so it
can be reused or rejoin: safely, completely and verifiably.

It only touches what Kubernetes, its runtime, its CNI or its installer created,
decided by exact identity (unit names, executable files, exact ports, mounts
below the kubelet's root dir, the files kubeadm writes), never by matching
text. It never deletes through a mount or follows a symlink, and it moves
precious state (PKI, kubeconfigs, etcd data) into a backup directory first.

On the host, every command starts from the same discovery:
  plan     show what would be changed, in order, and why; change nothing
  reset    show the plan, ask, apply it, then verify
  verify   discover again and run rejoin checks: a clean node has an empty
           plan and passing checks
  restore  put back the firewall a reset saved

On the cluster (kubeconfig flags as kubectl's):
  drain    cordon and drain a node; never hangs on a node that is down
  remove   drain, remove the node's etcd member, delete the Node (and its
           Rancher record, with --rancher-kubeconfig)
  rancher  cleanup: remove Rancher from an imported cluster;
           orphans: Rancher's node records whose node is gone, and --fix

Exit codes: 0 success or clean; 1 items failed or residue found; 2 could not
run or check (nothing changed unless said).`

func newRoot(s Streams) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:           "nodereset",
		Short:         "Reset a machine that left a Kubernetes cluster, touching only what Kubernetes created",
		Long:          rootHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	g.bind(root)
	root.AddCommand(newPlanCommand(g, s), newResetCommand(g, s), newVerifyCommand(g, s), newRestoreCommand(g, s),
		newDrainCommand(g, s), newRemoveCommand(g, s), newRancherCommand(g, s))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(ExitError, err) })
	return root
}

func newLogger(w io.Writer, verbosity int) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case verbosity >= 2:
		level = slog.LevelDebug
	case verbosity == 1:
		level = slog.LevelInfo
	}
	o := &slog.HandlerOptions{Level: level}
	if verbosity == 0 {
		// Warnings read as messages to the operator, not as a log.
		o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, o))
}
