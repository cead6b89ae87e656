package profile

import (
	"time"

	"github.com/nodereset/nodereset/internal/mounts"
	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/internal/preflight"
	"github.com/nodereset/nodereset/internal/procs"
	"github.com/nodereset/nodereset/internal/services"
	"github.com/nodereset/nodereset/internal/staticpods"
	"github.com/nodereset/nodereset/pkg/engine"
)

// Options are the user's choices that change how kinds act.
type Options struct {
	Backup      bool
	LazyUnmount bool
	Parallel    int
	TermTimeout time.Duration
	KillTimeout time.Duration
	StopTimeout time.Duration
	MountInfo   string
}

// Phase names, in the order they run.
const (
	PhaseServices   = "stop services"
	PhaseStaticPods = "remove static pods"
	PhaseProcesses  = "stop processes"
	PhaseMounts     = "unmount"
	PhasePaths      = "remove files"
)

// Phases turns a profile into the engine's ordered phases. Services go
// first so that systemd does not restart what is killed next; static pod
// manifests before processes so that a kubelet that survives cannot start
// them again; mounts before files so that nothing is removed through a
// mount (the path kind also refuses to cross one).
func Phases(p Profile, o Options) []engine.Phase {
	return []engine.Phase{
		{Name: PhaseServices, Kinds: []engine.Kind{services.New(services.Options{Units: p.Units, StopTimeout: o.StopTimeout})}},
		{Name: PhaseStaticPods, Kinds: []engine.Kind{staticpods.New(staticpods.Options{Dirs: p.StaticPodDirs, Backup: o.Backup})}},
		{Name: PhaseProcesses, Kinds: []engine.Kind{procs.New(procs.Options{
			Executables: p.Executables, Ports: p.Ports, TermTimeout: o.TermTimeout, KillTimeout: o.KillTimeout,
		})}},
		{Name: PhaseMounts, Kinds: []engine.Kind{mounts.New(mounts.Options{
			Roots: p.MountRoots, Lazy: o.LazyUnmount, Parallel: o.Parallel, MountInfo: o.MountInfo,
		})}},
		{Name: PhasePaths, Kinds: []engine.Kind{paths.New(paths.Options{Specs: p.Paths, Backup: o.Backup})}},
	}
}

// Checks are the profile's rejoin checks for verify.
func Checks(p Profile) []engine.Check {
	return []engine.Check{
		preflight.Ports(p.RejoinPorts),
		preflight.FilesAbsent(p.RejoinFiles),
		preflight.DirsEmpty(p.StaticPodDirs),
	}
}
