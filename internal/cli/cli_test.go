package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, Streams{In: strings.NewReader("sandbox\n"), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCommands runs the commands over temporary roots. It needs its own
// PID and network namespaces: the process kind and the port checks read
// /proc, which must show no process of the machine's.
func TestCommands(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.PID|testns.Net) {
		return
	}
	kubeadmFiles := map[string]string{
		"/etc/hostname":                              "sandbox\n",
		"/etc/kubernetes/kubelet.conf":               "kubeconfig",
		"/etc/kubernetes/pki/ca.crt":                 "CA",
		"/etc/kubernetes/manifests/etcd.yaml":        "apiVersion: v1\nkind: Pod\nmetadata: {name: etcd, namespace: kube-system}\n",
		"/var/lib/kubelet/config.yaml":               "staticPodPath: /etc/kubernetes/manifests\n",
		"/var/lib/kubelet/pods/uid/volumes/x/secret": "s",
		"/home/user/notes.txt":                       "mine",
	}

	t.Run("empty root plans nothing and verifies clean", func(t *testing.T) {
		root := t.TempDir()
		code, out, errOut := runCLI(t, "--host-root", root, "plan")
		if code != ExitOK || !strings.Contains(out, "Nothing to do") {
			t.Fatalf("plan: %d %s %s", code, out, errOut)
		}
		code, out, _ = runCLI(t, "--host-root", root, "verify", "-o", "json")
		var v engine.VerifyReport
		if err := json.Unmarshal([]byte(out), &v); err != nil || code != ExitOK || !v.Clean {
			t.Fatalf("verify: %d %v %s", code, err, out)
		}
	})

	t.Run("plan json names kind target action", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, kubeadmFiles)
		code, out, errOut := runCLI(t, "--host-root", root, "plan", "-o", "json")
		if code != ExitOK {
			t.Fatalf("plan: %d %s", code, errOut)
		}
		var p plan.Plan
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("one JSON object expected: %v\n%s", err, out)
		}
		got := map[string]plan.Action{}
		for _, it := range p.Items() {
			got[string(it.Kind)+" "+it.Target] = it.Action
		}
		want := map[string]plan.Action{
			"static-pod /etc/kubernetes/manifests/etcd.yaml": plan.ActionBackupRemove,
			"path /etc/kubernetes":                           plan.ActionBackupEmpty,
			"path /var/lib/kubelet":                          plan.ActionEmpty,
		}
		for k, a := range want {
			if got[k] != a {
				t.Errorf("%s: action %q, want %q (plan %v)", k, got[k], a, got)
			}
		}
		if p.Host != "sandbox" || len(p.Profiles) == 0 {
			t.Errorf("host %q profiles %v", p.Host, p.Profiles)
		}
	})

	t.Run("plan yaml is the json plan", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, kubeadmFiles)
		_, js, _ := runCLI(t, "--host-root", root, "plan", "-o", "json")
		code, ys, errOut := runCLI(t, "--host-root", root, "plan", "-o", "yaml")
		if code != ExitOK || strings.HasPrefix(strings.TrimSpace(ys), "{") {
			t.Fatalf("plan -o yaml: %d %s %s", code, ys, errOut)
		}
		var fromJSON, fromYAML plan.Plan
		if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal([]byte(ys), &fromYAML); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, ys)
		}
		// Discovered twice: the creation times differ, nothing else.
		fromYAML.Created = fromJSON.Created
		a, _ := json.Marshal(fromJSON)
		b, _ := json.Marshal(fromYAML)
		if !bytes.Equal(a, b) || len(fromYAML.Items()) == 0 {
			t.Errorf("yaml plan differs from json plan:\n%s\n%s", a, b)
		}
	})

	t.Run("verify finds residue", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, kubeadmFiles)
		code, out, _ := runCLI(t, "--host-root", root, "verify")
		if code != ExitResidue || !strings.Contains(out, "/etc/kubernetes/kubelet.conf exists") {
			t.Fatalf("verify: %d %s", code, out)
		}
	})

	t.Run("reset refuses without a terminal and --yes", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, kubeadmFiles)
		code, _, errOut := runCLI(t, "--host-root", root, "reset")
		if code != ExitError || !strings.Contains(errOut, "--yes") {
			t.Fatalf("reset: %d %s", code, errOut)
		}
		if _, err := os.Stat(filepath.Join(root, "etc/kubernetes/pki/ca.crt")); err != nil {
			t.Errorf("refused reset changed the root: %v", err)
		}
	})

	t.Run("reset backs up and cleans", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, kubeadmFiles)
		code, out, errOut := runCLI(t, "--host-root", root, "reset", "--yes", "-o", "json")
		if code != ExitOK {
			t.Fatalf("reset: %d %s %s", code, out, errOut)
		}
		var res struct {
			Report engine.Report       `json:"report"`
			Verify engine.VerifyReport `json:"verify"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Verify.Clean {
			t.Fatalf("reset JSON: %v %s", err, out)
		}
		ca, err := os.ReadFile(filepath.Join(res.Report.RunDir, "files/etc/kubernetes/pki/ca.crt"))
		if err != nil || string(ca) != "CA" {
			t.Errorf("CA backup: %q %v", ca, err)
		}
		if _, err := os.Stat(filepath.Join(res.Report.RunDir, engine.JournalName)); err != nil {
			t.Errorf("journal: %v", err)
		}
		if !strings.HasPrefix(res.Report.RunDir, root+"/var/lib/nodereset/backups/") {
			t.Errorf("run dir %s is not inside the host root", res.Report.RunDir)
		}
		if b, err := os.ReadFile(filepath.Join(root, "home/user/notes.txt")); err != nil || string(b) != "mine" {
			t.Errorf("user file: %q %v", b, err)
		}
	})

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"--host-root", "/does/not/exist", "plan"},
			{"plan", "-o", "xml"},
			{"plan", "extra-arg"},
			{"frobnicate"},
		} {
			if code, _, errOut := runCLI(t, args...); code != ExitError || errOut == "" {
				t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
			}
		}
	})

	t.Run("help teaches exit codes", func(t *testing.T) {
		code, out, _ := runCLI(t, "--help")
		if code != ExitOK || !strings.Contains(out, "Exit codes") {
			t.Errorf("help: %d %s", code, out)
		}
	})
}
