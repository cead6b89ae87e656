package profile

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nodereset/nodereset/pkg/host"
)

// ErrProfileMismatch is wrapped by Select when a named profile has no
// evidence on the host and force is off.
var ErrProfileMismatch = errors.New("profile does not match the host")

// Select chooses the profile to run from Detect's result. Without names
// it merges every detected profile, or falls back to kubeadm's defaults
// when none is detected (a clean host: see kubeadmDefaults). A profile
// seen only in files is merged too, with a warning. With names (--profile)
// it uses exactly those; one that was not detected is an error wrapping
// ErrProfileMismatch unless force.
func Select(detected []Profile, names []string, force bool) (Profile, error) {
	byName := map[string]Profile{}
	for _, p := range detected {
		byName[p.Name] = p
	}
	var chosen []Profile
	if len(names) == 0 {
		for _, p := range detected {
			if len(p.Evidence) > 0 {
				chosen = append(chosen, p)
			}
		}
		if len(chosen) == 0 {
			p, ok := byName["kubeadm"]
			if !ok {
				return Profile{}, errors.New("no profile could be built for this host; see the errors above")
			}
			p = kubeadmDefaults(p)
			p.Evidence = []string{"kubeadm: no distribution detected; using kubeadm's defaults, limited to the files kubeadm itself writes"}
			return p, nil
		}
		m := Merge(chosen...)
		m.Warnings = append(m.Warnings, leftoverWarnings(chosen)...)
		return m, nil
	}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if !contains(Names(), n) {
			return Profile{}, fmt.Errorf("unknown profile %q (known: %s)", n, strings.Join(Names(), ", "))
		}
		p, ok := byName[n]
		if !ok {
			return Profile{}, fmt.Errorf("profile %s could not be built for this host; see the errors above", n)
		}
		if len(p.Evidence) == 0 {
			if !force {
				return Profile{}, fmt.Errorf("--profile %s: %w: nothing of %s found (detected: %s); check the host root, or pass --force to use %s's paths anyway",
					n, ErrProfileMismatch, n, detectedNames(detected), n)
			}
			p.Evidence = []string{n + ": chosen with --force; no evidence on this host"}
		}
		chosen = append(chosen, p)
	}
	return Merge(chosen...), nil
}

// leftoverWarnings name the chosen profiles seen only in files (no unit,
// process or installed binary): likely what an earlier install left beside
// the distribution that runs, which the operator should choose about.
func leftoverWarnings(chosen []Profile) []string {
	var live, all []string
	for _, p := range chosen {
		// A recorded profile is a merge ("rke2+rancher"): --profile takes
		// the names one by one.
		names := strings.Split(p.Name, "+")
		all = append(all, names...)
		if !p.leftover {
			live = append(live, names...)
		}
	}
	var out []string
	for _, p := range chosen {
		if !p.leftover || p.filesOnly && len(live) == 0 {
			continue
		}
		var found []string
		for _, e := range p.Evidence {
			if f, ok := strings.CutPrefix(e, p.Name+": found "); ok {
				found = append(found, f)
			}
		}
		hint := "pass --profile " + p.Name + " to confirm, or check --host-root"
		if len(live) > 0 {
			hint = "pass --profile " + strings.Join(live, ",") + " to leave them alone, or --profile " + strings.Join(all, ",") + " to confirm"
		}
		out = append(out, fmt.Sprintf("profile %s is detected only from files (%s): no unit, process or binary of %s is on this host, so they may be an earlier install's leftovers, and reset removes them too; %s",
			p.Name, strings.Join(found, ", "), p.Name, hint))
	}
	return out
}

func detectedNames(ps []Profile) string {
	var n []string
	for _, p := range ps {
		if len(p.Evidence) > 0 {
			n = append(n, p.Name)
		}
	}
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ", ")
}

// Choice is the user's say in which profile runs.
type Choice struct {
	// Names restrict the run to these profiles (--profile); empty means
	// every detected one.
	Names []string
	// Force uses a named profile without evidence (--force).
	Force bool
	// Uninstall adds what the K3s/RKE2/Rancher install scripts installed
	// (--uninstall).
	Uninstall bool
	// Recorded is the profile the last run recorded. Without Names it is
	// evidence like the host's: a reset removes some of what detection
	// looks for, so a rerun must not fall back to kubeadm's defaults.
	Recorded *Profile
}

// DetectError is a profile that could not be built (a config file it must
// read is unreadable or malformed).
type DetectError struct {
	Profile string
	Err     error
}

func (e *DetectError) Error() string {
	return fmt.Sprintf("profile %s: %v", e.Profile, e.Err)
}

func (e *DetectError) Unwrap() error { return e.Err }

// Resolve is Detect, Select and, when asked, Uninstall in one call: the
// profile a command runs with. A profile that could not be built fails the
// call when it matters: always without names (its state would be missed),
// with names only when it is one of them.
func Resolve(h *host.Host, c Choice) (Profile, error) {
	ps, derr := Detect(h, "")
	var relevant []error
	for _, e := range unjoin(derr) {
		var de *DetectError
		if len(c.Names) == 0 || !errors.As(e, &de) || contains(c.Names, de.Profile) {
			relevant = append(relevant, e)
		}
	}
	if err := errors.Join(relevant...); err != nil {
		return Profile{}, err
	}
	if c.Recorded != nil && len(c.Names) == 0 {
		ps = append(ps, *c.Recorded)
	}
	p, err := Select(ps, c.Names, c.Force)
	if err != nil {
		return Profile{}, err
	}
	if c.Uninstall {
		return Uninstall(h, p)
	}
	return p, nil
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
