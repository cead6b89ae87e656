// Package clustertest runs a real etcd and kube-apiserver on loopback for
// the cluster-side tests, and plays the parts of a cluster that no test
// binary runs: a fake kubelet per node, a disruption controller and a
// ReplicaSet controller reduced to what a drain sees.
//
// The binaries are the ones hack/build-tools.sh builds into .cache/bin.
// Start them once per test binary (TestMain: Main), isolate tests by node
// and namespace names.
package clustertest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodereset/nodereset/internal/testns"
)

// Binaries, relative to the repository root.
const (
	EtcdBinary      = ".cache/bin/etcd-v3.6.7"
	APIServerBinary = ".cache/bin/kube-apiserver-v1.37.2"
)

// Tokens of the two users in the token file.
const (
	AdminToken   = "nodereset-admin-token"
	LimitedToken = "nodereset-limited-token"
	// LimitedUser may get and list nodes and pods, nothing else.
	LimitedUser = "limited"
)

// Server is a running etcd + kube-apiserver.
type Server struct {
	URL   string
	Dir   string
	procs []*proc
	// Missing is why the server could not start (binaries not built).
	Missing string
}

// Shared is the one server of a test binary, started by the first test
// that asks for it (tests re-run in namespaces by testns never start it),
// stopped by TestMain:
//
//	var cluster clustertest.Shared
//	func TestMain(m *testing.M) { code := m.Run(); cluster.Stop(); os.Exit(code) }
type Shared struct {
	once sync.Once
	s    *Server
	err  error
}

// Get starts the server once. Missing binaries skip t (fail it under
// NODERESET_REQUIRE_PRIVILEGED=1); a server that does not start fails it.
func (h *Shared) Get(t testing.TB) *Server {
	t.Helper()
	h.once.Do(func() { h.s, h.err = Start() })
	if h.err != nil {
		t.Fatalf("start kube-apiserver: %v", h.err)
	}
	testns.Prereq(t, h.s.Missing == "", "%s", h.s.Missing)
	return h.s
}

// Stop stops the server if it was started.
func (h *Shared) Stop() {
	if h.s != nil {
		h.s.Stop()
	}
}

// Start starts etcd and kube-apiserver on free loopback ports and waits
// until the API server is ready. Missing binaries are not an error: the
// returned Server says what is missing.
func Start() (*Server, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	etcd, api := filepath.Join(root, EtcdBinary), filepath.Join(root, APIServerBinary)
	for _, b := range []string{etcd, api} {
		if st, err := os.Stat(b); err != nil || st.Mode()&0o111 == 0 {
			return &Server{Missing: "needs " + b + " (run hack/build-tools.sh)"}, nil
		}
	}
	dir, err := os.MkdirTemp("", "nodereset-apiserver-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	client, peer := "http://127.0.0.1:"+ports[0], "http://127.0.0.1:"+ports[1]
	if err := s.run(etcd, "etcd.log", "--name", "t", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "t="+peer,
		"--unsafe-no-fsync", "--log-level", "error"); err != nil {
		return nil, err
	}
	if err := s.files(); err != nil {
		return nil, err
	}
	s.URL = "https://127.0.0.1:" + ports[2]
	if err := s.run(api, "kube-apiserver.log", "--etcd-servers", client, "--cert-dir", filepath.Join(dir, "certs"),
		"--secure-port", ports[2], "--bind-address", "127.0.0.1", "--endpoint-reconciler-type", "none",
		"--token-auth-file", filepath.Join(dir, "tokens.csv"), "--authorization-mode", "RBAC", "--anonymous-auth=false",
		"--service-account-key-file", filepath.Join(dir, "sa.key"), "--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-cluster-ip-range", "10.96.0.0/16",
		// No controller manager creates the default ServiceAccounts.
		"--disable-admission-plugins", "ServiceAccount", "--profiling=false", "--logging-format", "text", "-v", "0"); err != nil {
		return nil, err
	}
	if err := s.waitReady(90 * time.Second); err != nil {
		return nil, err
	}
	if err := s.grantLimited(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *Server) run(bin, log string, args ...string) error {
	f, err := os.Create(filepath.Join(s.Dir, log))
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Die with the test binary, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, log: f.Name(), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	s.procs = append(s.procs, p)
	return nil
}

// proc is a started server process; exited closes when it ends.
type proc struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// tail is the end of the process's log, for errors.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// files writes the token file and the service-account key.
func (s *Server) files() error {
	tokens := AdminToken + ",admin,admin-uid,system:masters\n" + LimitedToken + "," + LimitedUser + ",limited-uid\n"
	if err := os.WriteFile(filepath.Join(s.Dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return os.WriteFile(filepath.Join(s.Dir, "sa.key"), pemKey, 0o600)
}

func (s *Server) waitReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, p := range s.procs {
			select {
			case <-p.exited:
				return fmt.Errorf("%s exited: %s", p.cmd.Path, p.tail())
			default:
			}
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz: %s", resp.Status)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready after %s: %v\n%s", timeout, last, s.procs[len(s.procs)-1].tail())
}

// Stop kills the processes and removes the data directory.
func (s *Server) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	s.procs = nil
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// Config is a client config for a bearer token, with client-side rate
// limits high enough not to be what a test measures.
func (s *Server) Config(token string) *rest.Config {
	return &rest.Config{Host: s.URL, BearerToken: token, QPS: 200, Burst: 400, Timeout: 30 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
}

// Client is an admin clientset.
func (s *Server) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(s.Config(AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Kubeconfig writes a kubeconfig for token and returns its path.
func (s *Server) Kubeconfig(t testing.TB, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: t, context: {cluster: t, user: u}}]
current-context: t
`, s.URL, token)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func freePorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// grantLimited gives LimitedUser read access to nodes and pods only.
func (s *Server) grantLimited() error {
	c, err := kubernetes.NewForConfig(s.Config(AdminToken))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return createReadOnly(ctx, c, LimitedUser)
}
