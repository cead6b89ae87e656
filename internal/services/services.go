// Package services stops and disables the systemd units of Kubernetes
// components (kind "service"); units a package owns and the next join
// expects enabled are only stopped (Options.KeepEnabled). With systemd
// running it goes through systemd's D-Bus API; without it (a rescue shell,
// a container, a test root) it disables offline the way `systemctl --root`
// does: by removing the enablement symlinks. It never deletes a unit file: those belong to the
// distribution's packages or to the installer.
package services

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// unitDirs are where unit files live, highest precedence first.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// linkDirSuffixes are the directories whose symlinks enable a unit.
var linkDirSuffixes = []string{".wants", ".requires", ".upholds"}

// Manager is the part of systemd this kind needs.
type Manager interface {
	// ActiveState returns a unit's ActiveState ("active", "inactive" ...).
	ActiveState(ctx context.Context, unit string) (string, error)
	// Stop stops a unit and waits for the job to finish.
	Stop(ctx context.Context, unit string) error
	// Disable removes a unit's enablement and reloads systemd.
	Disable(ctx context.Context, unit string) error
	Close()
}

// Options configure the kind.
type Options struct {
	// Units are the unit names owned (e.g. "kubelet.service").
	Units []string
	// KeepEnabled are units of Units that are stopped but left enabled,
	// each with why (shown in the plan). They are planned only while they
	// run: enabled is how they should stay.
	KeepEnabled map[string]string
	// StopTimeout bounds each unit's stop job (default 90 s, systemd's
	// own default stop timeout).
	StopTimeout time.Duration
	// Connect returns a Manager, or nil when systemd does not run on the
	// host. Default: systemd's private socket under the host root.
	Connect func(ctx context.Context, h *host.Host) (Manager, error)
}

// Kind is the service kind.
type Kind struct{ opts Options }

// New returns the service kind.
func New(o Options) *Kind {
	if o.StopTimeout == 0 {
		o.StopTimeout = 90 * time.Second
	}
	if o.Connect == nil {
		o.Connect = ConnectSystemd
	}
	return &Kind{opts: o}
}

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindService }

// Detail is what discovery found about a unit.
type Detail struct {
	UnitFile string   `json:"unitFile"`
	Links    []string `json:"links,omitempty"`
	Active   string   `json:"active,omitempty"`
}

// Discover implements engine.Kind: a unit is planned when its unit file
// exists and it is enabled or running.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	mgr, err := k.opts.Connect(ctx, env.Host)
	if err != nil {
		return nil, err
	}
	if mgr != nil {
		defer mgr.Close()
	}
	var items []plan.Item
	var errs []error
	for _, u := range k.opts.Units {
		file, err := unitFile(env.Host, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if file == "" {
			continue
		}
		links, err := enablementLinks(env.Host, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d := Detail{UnitFile: file, Links: links}
		if mgr != nil {
			if d.Active, err = mgr.ActiveState(ctx, u); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", u, err))
				continue
			}
		}
		running := d.Active != "" && d.Active != "inactive" && d.Active != "failed"
		why, keep := k.opts.KeepEnabled[u]
		switch {
		case keep && running:
			items = append(items, plan.Item{Kind: plan.KindService, Target: u, Action: plan.ActionStop,
				Reason: reason(d) + "; " + why, Detail: d})
		case !keep && (running || len(links) > 0):
			items = append(items, plan.Item{Kind: plan.KindService, Target: u, Action: plan.ActionStopDisable,
				Reason: reason(d) + "; disabled so that a reboot does not start it on the reset node", Detail: d})
		}
	}
	return items, errors.Join(errs...)
}

func reason(d Detail) string {
	var parts []string
	if len(d.Links) > 0 {
		parts = append(parts, "enabled ("+strings.Join(d.Links, ", ")+")")
	}
	if d.Active != "" {
		parts = append(parts, d.Active)
	}
	return "Kubernetes component unit " + d.UnitFile + ", " + strings.Join(parts, ", ")
}

// Apply implements engine.Kind.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	mgr, err := k.opts.Connect(ctx, env.Host)
	if err != nil {
		for _, it := range items {
			rec.Done(it, fmt.Errorf("connect to systemd: %w", err))
		}
		return
	}
	if mgr != nil {
		defer mgr.Close()
	}
	engine.ApplyEach(ctx, items, rec, func(it plan.Item) error {
		if it.Action == plan.ActionStop {
			return k.stop(ctx, mgr, it.Target)
		}
		return k.stopDisable(ctx, env.Host, mgr, it.Target)
	})
}

// stop stops the unit; offline there is nothing running to stop.
func (k *Kind) stop(ctx context.Context, mgr Manager, unit string) error {
	if mgr == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, k.opts.StopTimeout)
	defer cancel()
	if err := mgr.Stop(sctx, unit); err != nil {
		return fmt.Errorf("stop %s (bounded by %s): %w; check `journalctl -u %s`", unit, k.opts.StopTimeout, err, unit)
	}
	return nil
}

func (k *Kind) stopDisable(ctx context.Context, h *host.Host, mgr Manager, unit string) error {
	if mgr != nil {
		if err := k.stop(ctx, mgr, unit); err != nil {
			return err
		}
		if err := mgr.Disable(ctx, unit); err != nil {
			return fmt.Errorf("disable %s: %w", unit, err)
		}
	}
	// Offline, and as a backstop after D-Bus: remove what is left.
	links, err := enablementLinks(h, unit)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		if err := os.Remove(h.Path(l)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("disable %s: %w", unit, err))
		}
	}
	return errors.Join(errs...)
}

// unitFile returns the host path of the unit's file, or "" when the unit is
// not installed or is masked.
func unitFile(h *host.Host, unit string) (string, error) {
	for _, d := range unitDirs {
		p := filepath.Join(d, unit)
		st, err := os.Lstat(h.Path(p))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("unit %s: %w", unit, err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			if t, _ := os.Readlink(h.Path(p)); t == "/dev/null" {
				return "", nil // masked: nothing will start it
			}
		}
		return p, nil
	}
	return "", nil
}

// enablementLinks returns the host paths of symlinks named exactly after the
// unit in /etc/systemd/system/*.wants (and .requires, .upholds).
func enablementLinks(h *host.Host, unit string) ([]string, error) {
	base := "/etc/systemd/system"
	ents, err := os.ReadDir(h.Path(base))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", base, err)
	}
	var links []string
	for _, e := range ents {
		if !e.IsDir() || !hasLinkSuffix(e.Name()) {
			continue
		}
		p := filepath.Join(base, e.Name(), unit)
		st, err := os.Lstat(h.Path(p))
		if err == nil && st.Mode()&fs.ModeSymlink != 0 {
			links = append(links, p)
		}
	}
	sort.Strings(links)
	return links, nil
}

func hasLinkSuffix(name string) bool {
	for _, s := range linkDirSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}
