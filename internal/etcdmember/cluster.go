package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// client is the etcd v3 client plus the options; calls that must reach one
// particular member go through pinned connections (Client.Dial), because the
// client's default connection balances over all endpoints and could land on
// the member being removed.
type client struct {
	cli *clientv3.Client
	o   Options
}

func dial(o Options) (*client, error) {
	cfg := clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: o.timeout(),
		// The library never prints; the etcd client logs to stderr by default.
		Logger: zap.NewNop(),
	}
	if o.CACert != "" || o.Cert != "" || o.Key != "" {
		tc, err := transport.TLSInfo{TrustedCAFile: o.CACert, CertFile: o.Cert, KeyFile: o.Key}.ClientConfig()
		if err != nil {
			return nil, &ClusterError{Endpoints: o.Endpoints, Err: fmt.Errorf("client certificates: %w", err)}
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, &ClusterError{Endpoints: o.Endpoints, Err: err}
	}
	return &client{cli: cli, o: o}, nil
}

func (c *client) close() { _ = c.cli.Close() }

// pinned opens a connection to exactly one endpoint; close it after use.
func (c *client) pinned(ep string) (*grpc.ClientConn, error) { return c.cli.Dial(ep) }

// list reads the member list, linearizable when the cluster can answer so,
// else serializable from whichever member answers: planning must still see
// the members of a cluster that lost quorum, to refuse with the reason.
func (c *client) list(ctx context.Context) ([]*pb.Member, error) {
	cctx, cancel := context.WithTimeout(ctx, c.o.timeout())
	resp, err := c.cli.MemberList(cctx)
	cancel()
	if err == nil {
		return resp.Members, nil
	}
	c.o.log().Warn("etcd linearizable member list failed, trying serializable", "err", err)
	cctx, cancel = context.WithTimeout(ctx, c.o.timeout())
	defer cancel()
	resp, err2 := c.cli.MemberList(cctx, clientv3.WithSerializable())
	if err2 != nil {
		return nil, &ClusterError{Endpoints: c.o.Endpoints, Err: fmt.Errorf("member list: %w", errors.Join(err, err2))}
	}
	return resp.Members, nil
}

type statusAnswer struct {
	ep   string
	resp *pb.StatusResponse
	err  error
}

// statuses asks every endpoint for its Status at once, each bounded.
func (c *client) statuses(ctx context.Context, eps []string) []statusAnswer {
	out := make([]statusAnswer, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			resp, err := c.status(ctx, ep)
			out[i] = statusAnswer{ep: ep, resp: resp, err: err}
		})
	}
	wg.Wait()
	return out
}

// status asks one endpoint, failing fast when it refuses connections: the
// etcd client's default (wait for the connection until the deadline) would
// make every dead member cost the whole timeout. A host that drops packets
// still costs up to the timeout.
func (c *client) status(ctx context.Context, ep string) (*pb.StatusResponse, error) {
	conn, err := c.pinned(ep)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, c.o.timeout())
	defer cancel()
	resp, err := pb.NewMaintenanceClient(conn).Status(cctx, &pb.StatusRequest{}, grpc.WaitForReady(false))
	return resp, rpctypes.Error(err)
}

// view is the cluster as planning needs it: every member with its health,
// and the leader most healthy members name.
func (c *client) view(ctx context.Context) ([]Member, uint64, error) {
	pms, err := c.list(ctx)
	if err != nil {
		return nil, 0, err
	}
	// Probe the given endpoints and every member's advertised client URLs:
	// a member is judged by its own answer, identified by the header's ID.
	eps, seen := []string{}, map[string]bool{}
	add := func(u string) {
		if !seen[u] {
			seen[u] = true
			eps = append(eps, u)
		}
	}
	for _, e := range c.o.Endpoints {
		add(e)
	}
	for _, pm := range pms {
		for _, u := range pm.ClientURLs {
			add(u)
		}
	}
	answers := c.statuses(ctx, eps)
	members := make([]Member, len(pms))
	votes := map[uint64]int{}
	for i, pm := range pms {
		m := fromPB(pm)
		judge(&m, answers)
		if m.Healthy {
			for _, a := range answers {
				if a.ep == m.Endpoint {
					votes[a.resp.Leader]++
				}
			}
		}
		members[i] = m
	}
	// Stable order for plans and messages: by name, then ID.
	sort.SliceStable(members, func(i, j int) bool {
		if members[i].Name != members[j].Name {
			return members[i].Name < members[j].Name
		}
		return members[i].ID < members[j].ID
	})
	var leader uint64
	for id, n := range votes {
		if n > votes[leader] || (n == votes[leader] && id < leader) {
			leader = id
		}
	}
	return members, leader, nil
}

// judge sets m's health from the Status answers: the first endpoint that
// answered for m's ID decides.
func judge(m *Member, answers []statusAnswer) {
	m.Problem = "no endpoint answered for it (client URLs " + fmt.Sprint(m.ClientURLs) + ")"
	for _, a := range answers {
		if a.err != nil {
			if slices.Contains(m.ClientURLs, a.ep) {
				m.Problem = fmt.Sprintf("%s: %v", a.ep, a.err)
			}
			continue
		}
		if a.resp.Header == nil || a.resp.Header.MemberId != m.ID {
			continue
		}
		m.Endpoint = a.ep
		switch {
		case a.resp.Leader == 0:
			m.Problem = a.ep + ": knows no leader"
		case len(a.resp.Errors) > 0:
			m.Problem = fmt.Sprintf("%s: %v", a.ep, a.resp.Errors)
		default:
			m.Healthy, m.Problem = true, ""
		}
		return
	}
}

func fromPB(pm *pb.Member) Member {
	return Member{ID: pm.ID, Name: pm.Name, PeerURLs: pm.PeerURLs, ClientURLs: pm.ClientURLs, Learner: pm.IsLearner}
}
