package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// exitError carries an exit code without a message (the command printed
// its own output already).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// run builds the command tree and returns the process exit code; os.Exit
// lives in main alone.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(os.Stdout)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var code exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	default:
		fmt.Fprintln(os.Stderr, "nodesim:", err)
		return 1
	}
}

func newRoot(out io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "nodesim",
		Short:         "Run a sandbox kubeadm node in private namespaces",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var o sandbox.Options
	up := &cobra.Command{
		Use:   "up --root R --state S",
		Short: "Start a sandbox node and return once it is ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			o.Nodesim, o.Detach = self, true
			t0 := time.Now()
			n, err := sandbox.Start(cmd.Context(), o)
			if err != nil {
				return err
			}
			m := n.Manifest()
			fmt.Fprintf(out, "sandbox up in %v: init pid %d, root %s, %d expected items, %d decoy files\n",
				time.Since(t0).Round(time.Millisecond), m.InitPID, m.Root, len(m.Expected), len(m.Decoys.Files))
			return nil
		},
	}
	up.Flags().StringVar(&o.Root, "root", "", "directory to plant the node's / on (required)")
	up.Flags().IntVar(&o.Pods, "pods", 3, "pods with volumes to plant")
	up.Flags().IntVar(&o.Volumes, "volumes", 4, "volumes per pod")
	up.Flags().StringVar(&o.Profile, "profile", "kubeadm", "distribution layout: "+strings.Join(sandbox.Profiles(), ", "))
	up.Flags().StringSliceVar(&o.Features, "with", nil, "optional parts: "+strings.Join(sandbox.Features(), ", "))
	_ = up.MarkFlagRequired("root")

	var initOpts sandbox.InitOptions
	initCmd := &cobra.Command{
		Use:    "init",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			// fd 3 is the readiness pipe from Start; keep it from the fakes.
			unix.CloseOnExec(3)
			initOpts.Ready = os.NewFile(3, "ready")
			initOpts.Log = log.New(os.Stderr, "nodesim init: ", log.Lmicroseconds)
			return sandbox.RunInit(initOpts)
		},
	}
	initCmd.Flags().StringVar(&initOpts.Root, "root", "", "")
	initCmd.Flags().IntVar(&initOpts.Pods, "pods", 3, "")
	initCmd.Flags().IntVar(&initOpts.Volumes, "volumes", 4, "")
	initCmd.Flags().StringVar(&initOpts.Profile, "profile", "kubeadm", "")
	initCmd.Flags().StringSliceVar(&initOpts.Features, "with", nil, "")

	var state string
	root.PersistentFlags().StringVar(&state, "state", "", "sandbox state directory (manifest.json, init.pid, init.log)")
	open := func() (*sandbox.Node, error) {
		if state == "" {
			return nil, errors.New("--state is required")
		}
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return sandbox.Open(state, self)
	}
	up.PreRunE = func(*cobra.Command, []string) error { o.State = state; return needState(state) }
	initCmd.PreRunE = func(*cobra.Command, []string) error { initOpts.State = state; return needState(state) }

	root.AddCommand(up, initCmd,
		&cobra.Command{
			Use: "down --state S", Short: "Stop the sandbox (SIGTERM, SIGKILL after 5 s)", Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				n, err := open()
				if err != nil {
					return err
				}
				return n.Close()
			},
		},
		&cobra.Command{
			Use: "exec --state S -- CMD [ARGS...]", Short: "Run CMD inside the sandbox's namespaces (absolute paths)",
			Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				n, err := open()
				if err != nil {
					return err
				}
				c := n.Command(cmd.Context(), args[0], args[1:]...)
				c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
				err = c.Run()
				if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
					return exitError(ee.ExitCode())
				}
				return err
			},
		},
		&cobra.Command{
			Use: "check --state S", Short: "Verify inside the sandbox that every decoy is intact", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				n, err := open()
				if err != nil {
					return err
				}
				if err := n.Check(cmd.Context()); err != nil {
					fmt.Fprintln(out, err)
					return exitError(1)
				}
				fmt.Fprintln(out, "all decoys intact")
				return nil
			},
		},
		&cobra.Command{
			Use: "snapshot --state S", Short: "Print a deterministic snapshot of the sandbox", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				n, err := open()
				if err != nil {
					return err
				}
				s, err := n.Snapshot(cmd.Context())
				fmt.Fprint(out, s)
				return err
			},
		},
		&cobra.Command{
			Use: "check-inside", Hidden: true, Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				m, err := sandbox.ReadManifest(state)
				if err != nil {
					return exitWith(2, err)
				}
				probs := sandbox.CheckDecoys(m)
				for _, p := range probs {
					fmt.Fprintln(out, p)
				}
				if len(probs) > 0 {
					return exitError(1)
				}
				return nil
			},
		},
		&cobra.Command{
			Use: "snapshot-inside", Hidden: true, Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				m, err := sandbox.ReadManifest(state)
				if err != nil {
					return err
				}
				s, err := sandbox.TakeSnapshot(m.Root)
				if err != nil {
					return err
				}
				fmt.Fprint(out, s)
				return nil
			},
		},
	)
	return root
}

func needState(state string) error {
	if state == "" {
		return errors.New("--state is required")
	}
	return nil
}

// exitWith prints err and exits with code, so check-inside can tell "could
// not check" (2) from "decoys damaged" (1).
func exitWith(code int, err error) error {
	fmt.Fprintln(os.Stderr, "nodesim:", err)
	return exitError(code)
}
