package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/nodereset/nodereset/internal/profile"
	"github.com/nodereset/nodereset/pkg/plan"
)

// profileFile is where a reset records the profile it ran with. A reset
// removes some of its own evidence (kubeadm-flags.env naming a custom
// --root-dir, RKE1's certs), so a resumed reset and a later verify read the
// profile back instead of detecting less than was there.
const profileFile = "profile.json"

func runFiles(p *plan.Plan, prof profile.Profile) (map[string][]byte, error) {
	pj, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	fj, err := json.MarshalIndent(prof, "", "  ")
	if err != nil {
		return nil, err
	}
	return map[string][]byte{"plan.json": pj, profileFile: fj}, nil
}

// lastRunProfile returns the profile the newest run under backupRoot
// recorded, if any.
func lastRunProfile(backupRoot string) (profile.Profile, bool, error) {
	var p profile.Profile
	ents, err := os.ReadDir(backupRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("read backup directory: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	// Run directories are named by UTC time: the last is the newest.
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		path := filepath.Join(backupRoot, n, profileFile)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return p, false, err
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return p, false, fmt.Errorf("%s is corrupt: %w; move it away", path, err)
		}
		return p, true, nil
	}
	return p, false, nil
}
