package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/host"
)

// restore --firewall takes the run directory as a host path or as reset
// printed it under --host-root.
func TestRunDirPath(t *testing.T) {
	root := t.TempDir()
	run := "/var/lib/nodereset/backups/20261201T061500Z"
	if err := os.MkdirAll(filepath.Join(root, run, "firewall"), 0o700); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, arg, want string
	}{
		{"host path", run, filepath.Join(root, run)},
		{"its firewall subdirectory", run + "/firewall", filepath.Join(root, run, "firewall")},
		{"under the host root", filepath.Join(root, run), filepath.Join(root, run)},
		{"missing", "/var/lib/nodereset/backups/20200101T000000Z", ""},
		{"missing under the host root", filepath.Join(root, "var/lib/nodereset/backups/x"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runDirPath(h, tc.arg)
			if tc.want == "" {
				if !errors.Is(err, errNoRunDir) {
					t.Errorf("runDirPath(%s) = %q, %v; want errNoRunDir", tc.arg, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("runDirPath(%s) = %q, %v; want %s", tc.arg, got, err, tc.want)
			}
		})
	}
}

// A run directory that does not exist, or holds no firewall backup,
// changes nothing (exit 2) and the message lists the ones that do.
func TestRestoreListsRunsWithABackup(t *testing.T) {
	root := t.TempDir()
	backups := "/var/lib/nodereset/backups"
	for _, d := range []string{"20261201T061500Z/firewall", "20261202T061500Z/firewall", "20261203T061500Z"} {
		if err := os.MkdirAll(filepath.Join(root, backups, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, arg := range []string{backups + "/20200101T000000Z", backups + "/20261203T061500Z"} {
		code, _, errOut := runCLI(t, "restore", "--host-root", root, "--firewall", arg)
		want := "newest first:\n  " + backups + "/20261202T061500Z\n  " + backups + "/20261201T061500Z\n"
		if code != ExitError || !strings.Contains(errOut, "nothing was changed") || !strings.Contains(errOut, want) {
			t.Errorf("restore --firewall %s: exit %d\n%s\nwant exit 2, nothing changed and\n%s", arg, code, errOut, want)
		}
	}
}
