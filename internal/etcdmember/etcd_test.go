package etcdmember

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/nodereset/nodereset/internal/testns"
)

// The real etcd that hack/build-tools.sh builds, relative to the repository root.
const etcdBinary = ".cache/bin/etcd-v3.6.7"

// etcdPath finds the binary by walking up from the test's directory to go.mod.
func etcdPath(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			testns.Prereq(t, false, "no go.mod above the test directory")
			return ""
		}
		dir = parent
	}
	p := filepath.Join(dir, etcdBinary)
	st, err := os.Stat(p)
	testns.Prereq(t, err == nil && st.Mode()&0o111 != 0, "needs %s (run hack/build-tools.sh)", p)
	return p
}

// loUp brings up loopback in the test's fresh network namespace; every
// 127.0.0.0/8 address then works, so each member gets an address of its own
// (peer hosts must differ, as on real nodes) and kubeadm's real ports.
func loUp(t *testing.T) {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("loopback up: %v", err)
	}
}

// etcdProc is one member's process.
type etcdProc struct {
	name, ip, dataDir, logPath string
	cmd                        *exec.Cmd
	exited                     chan struct{}
}

func (p *etcdProc) clientURL() string { return "http://" + p.ip + ":2379" }
func (p *etcdProc) peerURL() string   { return "http://" + p.ip + ":2380" }

// etcdCluster runs members on loopback, data dirs and logs under one temp dir.
type etcdCluster struct {
	t     *testing.T
	bin   string
	dir   string
	procs map[string]*etcdProc
}

func newEtcdCluster(t *testing.T, bin string) *etcdCluster {
	return &etcdCluster{t: t, bin: bin, dir: t.TempDir(), procs: map[string]*etcdProc{}}
}

// start runs member name at ip; initial lists name=peerURL of every member
// it starts with, state is "new" or "existing".
func (c *etcdCluster) start(name, ip, initial, state string) *etcdProc {
	c.t.Helper()
	p := c.procs[name]
	if p == nil {
		p = &etcdProc{name: name, ip: ip, dataDir: filepath.Join(c.dir, name), logPath: filepath.Join(c.dir, name+".log")}
		c.procs[name] = p
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(c.bin,
		"--name", name, "--data-dir", p.dataDir,
		"--listen-client-urls", p.clientURL(), "--advertise-client-urls", p.clientURL(),
		"--listen-peer-urls", p.peerURL(), "--initial-advertise-peer-urls", p.peerURL(),
		"--initial-cluster", initial, "--initial-cluster-state", state,
		"--initial-cluster-token", "nodereset-test",
		"--log-level", "warn",
		// Faster elections than the defaults (100/1000 ms) keep the test short.
		"--heartbeat-interval", "50", "--election-timeout", "500")
	p.cmd.Dir = c.dir
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start etcd %s: %v", name, err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.exited)
	c.t.Cleanup(func() { p.stopIfRunning() })
	return p
}

// stop kills the member (as a crashed node would go) and waits for it.
func (p *etcdProc) stop(t *testing.T) {
	t.Helper()
	if !p.stopIfRunning() {
		t.Fatalf("etcd %s did not exit after SIGKILL", p.name)
	}
}

func (p *etcdProc) stopIfRunning() bool {
	if p.cmd == nil || p.cmd.Process == nil {
		return true
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

func (c *etcdCluster) client() *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// endpoints are the client URLs of the members whose processes run, as the
// caller would pass them.
func (c *etcdCluster) endpoints() []string {
	var eps []string
	for _, p := range c.procs {
		select {
		case <-p.exited:
		default:
			eps = append(eps, p.clientURL())
		}
	}
	return eps
}

// waitHealthy waits until each of the named members answers and knows a
// leader, then HealthInterval more: etcd's strict reconfig check refuses a
// removal until the peers have been connected for 5 s.
func (c *etcdCluster) waitHealthy(names ...string) {
	c.t.Helper()
	c.waitAnswering(names...)
	time.Sleep(5500 * time.Millisecond)
}

// waitAnswering waits until each of the named members answers Status and
// knows a leader.
func (c *etcdCluster) waitAnswering(names ...string) {
	c.t.Helper()
	cli := c.client()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range names {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, c.procs[n].clientURL())
			cancel()
			if err == nil && st.Leader != 0 {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("etcd %s not healthy: %v\n%s", n, err, c.logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// leader returns the name of the current leader.
func (c *etcdCluster) leader() string {
	c.t.Helper()
	cli := c.client()
	for _, p := range c.procs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, p.clientURL())
		cancel()
		if err != nil || st.Leader == 0 {
			continue
		}
		for _, q := range c.members() {
			if q.ID == st.Leader {
				return q.Name
			}
		}
	}
	c.t.Fatalf("no leader\n%s", c.logs())
	return ""
}

// members is the member list, read directly with the etcd client.
func (c *etcdCluster) members() []Member {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := c.client().MemberList(ctx)
	if err != nil {
		c.t.Fatalf("member list: %v", err)
	}
	ms := make([]Member, len(resp.Members))
	for i, pm := range resp.Members {
		ms[i] = fromPB(pm)
	}
	return ms
}

func (c *etcdCluster) memberNames() string {
	var names []string
	for _, m := range c.members() {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

func (c *etcdCluster) logs() string {
	var b strings.Builder
	for n, p := range c.procs {
		data, _ := os.ReadFile(p.logPath)
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- etcd %s log (tail) ---\n%s\n", n, data)
	}
	return b.String()
}
