package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodereset/nodereset/internal/profile"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
)

// DefaultBackupDir is the host path where runs keep journals and backups.
const DefaultBackupDir = "/var/lib/nodereset/backups"

type globalOptions struct {
	hostRoot    string
	output      string
	backupDir   string
	noBackup    bool
	verbosity   int
	lazyUnmount bool
	parallel    int
	termTimeout time.Duration
	killTimeout time.Duration
	stopTimeout time.Duration

	grace         time.Duration
	allContainers bool
	images        bool

	criSockets   []string
	serviceCIDRs []string
	clusterCIDRs []string
	conntrack    bool

	profiles  []string
	force     bool
	uninstall bool
}

// bind adds the flags every command has.
func (g *globalOptions) bind(c *cobra.Command) {
	f := c.PersistentFlags()
	f.StringVarP(&g.output, "output", "o", "text", "output format: text, json or yaml")
	f.CountVarP(&g.verbosity, "verbose", "v", "log more to stderr (-v info, -vv debug)")
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
}

// bindHostRoot adds --host-root, for commands that work on the host.
func (g *globalOptions) bindHostRoot(c *cobra.Command) {
	c.Flags().StringVar(&g.hostRoot, "host-root", "/", "directory where the host's / is mounted; every host path is resolved under it")
	_ = c.MarkFlagDirname("host-root")
}

// bindHost adds the flags of the host commands (plan, reset, verify): they
// must build the same plan, so they take the same flags.
func (g *globalOptions) bindHost(c *cobra.Command) {
	g.bindHostRoot(c)
	f := c.Flags()
	f.StringVar(&g.backupDir, "backup-dir", DefaultBackupDir, "host path (under --host-root) for journals and backups, one directory per run")
	f.BoolVar(&g.noBackup, "no-backup", false, "remove precious state (PKI, kubeconfigs, etcd data) instead of moving it to the backup directory")
	f.StringSliceVar(&g.profiles, "profile", nil, "restrict the run to these distribution profiles ("+strings.Join(profile.Names(), ", ")+"); default: every one detected")
	f.BoolVar(&g.force, "force", false, "use --profile even when the host shows no evidence of it")
	f.BoolVar(&g.uninstall, "uninstall", false, "also remove what K3s/RKE2/Rancher install scripts installed (binaries, units, scripts), never a file a package owns, and disable kubeadm's kubelet.service too")
	f.BoolVar(&g.lazyUnmount, "lazy-unmount", false, "detach busy mounts (MNT_DETACH) instead of reporting them; their data stays reachable by their holders")
	f.IntVar(&g.parallel, "parallel", 8, "how many independent items (mounts, containers) are removed at once")
	f.DurationVar(&g.termTimeout, "term-timeout", 10*time.Second, "how long processes get after SIGTERM before SIGKILL (0: SIGKILL at once)")
	f.DurationVar(&g.killTimeout, "kill-timeout", 5*time.Second, "how long to wait for processes to die after SIGKILL")
	f.DurationVar(&g.stopTimeout, "stop-timeout", 90*time.Second, "bound on each systemd stop job")
	f.DurationVar(&g.grace, "grace", 10*time.Second, "how long containers get to stop before they are killed")
	f.BoolVar(&g.allContainers, "all-containers", false, "remove EVERY container of the runtimes, not only Kubernetes' (what the cleanup scripts do; the plan warns)")
	f.BoolVar(&g.images, "images", false, "also remove the images used only by removed containers")
	f.StringSliceVar(&g.criSockets, "cri-socket", nil, "CRI endpoint to remove Kubernetes pods from, besides the profile's (repeatable; unix:// URL or host path)")
	f.StringSliceVar(&g.serviceCIDRs, "service-cidr", nil, "Service CIDR(s): IPVS virtual services inside them are Kubernetes'; adds to what is found in the kube-apiserver config")
	f.BoolVar(&g.conntrack, "conntrack", false, "also delete conntrack flows to Service IPs that kube-proxy translated (needs a known Service CIDR)")
	f.StringSliceVar(&g.clusterCIDRs, "cluster-cidr", nil, "pod CIDR(s): flannel's comment-less masquerade rules for them are removed")
	_ = c.RegisterFlagCompletionFunc("profile", cobra.FixedCompletions(profile.Names(), cobra.ShellCompDirectiveNoFileComp))
	if c.Name() != "reset" {
		// Accepted everywhere, so one command line works for plan, reset
		// and verify; listed only where they do something.
		for _, name := range applyOnlyFlags {
			_ = f.MarkHidden(name)
		}
	}
}

// applyOnlyFlags change how reset applies the plan, never the plan.
var applyOnlyFlags = []string{"lazy-unmount", "parallel", "term-timeout", "kill-timeout", "stop-timeout", "grace"}

// validate rejects values the kinds would silently replace by their
// defaults (they read 0 as "unset").
func (g *globalOptions) validate() error {
	var errs []error
	if g.parallel < 1 {
		errs = append(errs, fmt.Errorf("--parallel %d: must be at least 1 (how many items are removed at once)", g.parallel))
	}
	for _, d := range []struct {
		name  string
		v     time.Duration
		zero  bool
		about string
	}{
		// 0: SIGKILL right after SIGTERM, a real choice.
		{"term-timeout", g.termTimeout, true, "how long processes get after SIGTERM"},
		{"kill-timeout", g.killTimeout, false, "how long to wait for processes to die after SIGKILL"},
		{"stop-timeout", g.stopTimeout, false, "the bound on each systemd stop job"},
		// Both runtimes stop in whole seconds and the kinds read 0 as
		// their default: the shortest grace is 1s.
		{"grace", g.grace, false, "how long containers get to stop; the shortest is 1s"},
	} {
		switch {
		case d.v < 0:
			errs = append(errs, fmt.Errorf("--%s %s: must not be negative (%s)", d.name, d.v, d.about))
		case d.v == 0 && !d.zero:
			errs = append(errs, fmt.Errorf("--%s 0s: must be positive (%s)", d.name, d.about))
		}
	}
	return errors.Join(errs...)
}

// kindOptions are the flags as the kinds take them.
func (g *globalOptions) kindOptions() profile.Options {
	term := g.termTimeout
	if term == 0 {
		// The process kind reads 0 as its default; the shortest wait is
		// what --term-timeout 0 asks for.
		term = time.Nanosecond
	}
	return profile.Options{
		Backup: !g.noBackup, LazyUnmount: g.lazyUnmount, Parallel: g.parallel,
		TermTimeout: term, KillTimeout: g.killTimeout, StopTimeout: g.stopTimeout,
		Grace: g.grace, AllContainers: g.allContainers, Images: g.images, CRISockets: g.criSockets,
		ServiceCIDRs: g.serviceCIDRs, ClusterCIDRs: g.clusterCIDRs, Conntrack: g.conntrack,
	}
}

// session is everything a command needs, built from the global flags.
type session struct {
	env     *engine.Env
	profile profile.Profile
	phases  []engine.Phase
	checks  []engine.Check
	print   *printer
}

func (g *globalOptions) session(out, errw io.Writer) (*session, error) {
	if err := g.validate(); err != nil {
		return nil, withCode(ExitError, err)
	}
	pr, err := newPrinter(out, errw, g.output, g.verbosity)
	if err != nil {
		return nil, err
	}
	h, err := host.New(g.hostRoot)
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	log := newLogger(errw, g.verbosity)
	choice := profile.Choice{Names: g.profiles, Force: g.force, Uninstall: g.uninstall}
	if len(g.profiles) == 0 {
		// What the last run recorded counts as evidence, before any
		// fallback to kubeadm's defaults: the run removed some of what
		// detection looks for.
		saved, ok, err := lastRunProfile(g.backupRoot(h))
		if err != nil {
			return nil, withCode(ExitError, err)
		}
		if ok {
			saved.Evidence = append([]string{"recorded by the last run in " + g.backupDir}, saved.Evidence...)
			choice.Recorded = &saved
		}
	}
	prof, err := profile.Resolve(h, choice)
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	if err := prof.CheckShared(); err != nil {
		return nil, withCode(ExitError, err)
	}
	return &session{
		env:     &engine.Env{Host: h, Log: log},
		profile: prof,
		phases:  profile.Phases(prof, g.kindOptions()),
		checks:  profile.Checks(prof),
		print:   pr,
	}, nil
}

// backupRoot is the backup directory as nodereset sees it.
func (g *globalOptions) backupRoot(h *host.Host) string { return h.Path(g.backupDir) }

// hostName is the name the operator types to confirm a reset: the host's
// /etc/hostname, else the kernel's.
func hostName(h *host.Host) string {
	if p, err := h.Resolve("/etc/hostname"); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			if n := strings.TrimSpace(string(b)); n != "" {
				return n
			}
		}
	}
	n, _ := os.Hostname()
	return n
}
