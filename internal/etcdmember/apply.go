package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Result is what Apply did.
type Result struct {
	Member        string   // label of the member, or the target when none matched
	ID            uint64   // 0 when none matched
	AlreadyGone   bool     // nothing to remove (not found at plan or apply time)
	Via           string   // the member the calls went to
	LeaderMovedTo string   // set when leadership was moved away first
	Leader        string   // the leader after the removal
	Remaining     []string // members after the removal
}

// pollEvery is how often the bounded waits look again.
const pollEvery = 100 * time.Millisecond

// Apply carries the plan out: move leadership away when the target leads,
// remove the member through Via, then check it is gone and a leader exists.
// It is idempotent: a member gone by now is success.
func (r *Removal) Apply(ctx context.Context) (Result, error) {
	res := Result{Member: r.Target.String()}
	if r.Refused != nil {
		return res, r.Refused
	}
	if r.Member == nil {
		res.AlreadyGone = true
		return res, nil
	}
	m, via, o := r.Member, r.Via, r.opts
	res.Member, res.ID, res.Via = m.Label(), m.ID, via.Label()
	stepErr := func(step string, err error, hint string) error {
		return &StepError{Member: m.Label(), Via: via.Label() + " at " + via.Endpoint, Step: step, Err: err, Hint: hint}
	}
	c, err := dial(o)
	if err != nil {
		return res, err
	}
	defer c.close()
	conn, err := c.pinned(via.Endpoint)
	if err != nil {
		return res, stepErr("connect", err, "check that the member is up, then run again")
	}
	defer conn.Close()
	cluster := pb.NewClusterClient(conn)

	// The plan may be old (a crash, a rerun): look again before acting.
	present, err := r.present(ctx, cluster)
	if err != nil {
		return res, stepErr("member list", err, "run again once the member answers")
	}
	if !present {
		res.AlreadyGone = true
		return res, r.verify(ctx, c, cluster, &res, stepErr)
	}
	leader, err := r.leader(ctx, c)
	if err != nil {
		return res, stepErr("status", err, "run again once the member answers")
	}
	if leader == m.ID {
		if err := r.moveLeader(ctx, c); err != nil {
			return res, stepErr("move leader", err,
				"leadership did not move; run again, or move it by hand: etcdctl move-leader ID")
		}
		res.LeaderMovedTo = via.Label()
	}

	cctx, cancel := context.WithTimeout(ctx, o.timeout())
	_, err = cluster.MemberRemove(cctx, &pb.MemberRemoveRequest{ID: m.ID})
	cancel()
	switch err = rpctypes.Error(err); {
	case err == nil:
		o.log().Info("etcd member removed", "member", m.Label(), "via", via.Label())
	case errors.Is(err, rpctypes.ErrMemberNotFound):
		res.AlreadyGone = true
	default:
		return res, stepErr("remove", err, removeHint(err))
	}
	return res, r.verify(ctx, c, cluster, &res, stepErr)
}

func removeHint(err error) string {
	switch {
	case errors.Is(err, rpctypes.ErrUnhealthy), errors.Is(err, rpctypes.ErrMemberNotEnoughStarted):
		return "etcd itself refused (strict reconfig check): not enough of the other members have been connected for 5 s; bring them back, wait, and run again"
	case errors.Is(err, rpctypes.ErrLeaderChanged), errors.Is(err, context.DeadlineExceeded):
		return "the cluster may be electing a leader or have lost quorum; check etcdctl endpoint status --cluster and run again"
	}
	return "check etcdctl member list and run again"
}

func (r *Removal) present(ctx context.Context, cluster pb.ClusterClient) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.opts.timeout())
	defer cancel()
	resp, err := cluster.MemberList(cctx, &pb.MemberListRequest{Linearizable: true})
	if err != nil {
		return false, rpctypes.Error(err)
	}
	for _, pm := range resp.Members {
		if pm.ID == r.Member.ID {
			return true, nil
		}
	}
	return false, nil
}

// leader is the leader as Via sees it now.
func (r *Removal) leader(ctx context.Context, c *client) (uint64, error) {
	st, err := c.status(ctx, r.Via.Endpoint)
	if err != nil {
		return 0, err
	}
	return st.Leader, nil
}

// moveLeader hands leadership to Via. etcd accepts MoveLeader only at the
// leader, so this one call goes to the target itself; it changes no data
// and the removal still goes through Via. Bounded, then confirmed from Via.
func (r *Removal) moveLeader(ctx context.Context, c *client) error {
	if r.Member.Endpoint == "" {
		return fmt.Errorf("the leader %s answers at none of its client URLs %v", r.Member.Label(), r.Member.ClientURLs)
	}
	conn, err := c.pinned(r.Member.Endpoint)
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, r.opts.timeout())
	_, err = pb.NewMaintenanceClient(conn).MoveLeader(cctx, &pb.MoveLeaderRequest{TargetID: r.Via.ID})
	cancel()
	if err = rpctypes.Error(err); err != nil && !errors.Is(err, rpctypes.ErrNotLeader) {
		return err
	}
	// ErrNotLeader: leadership moved meanwhile; confirm where it is now.
	return poll(ctx, r.opts.timeout(), func(ctx context.Context) (bool, error) {
		l, err := r.leader(ctx, c)
		if err != nil {
			return false, err
		}
		if l != r.Via.ID {
			return false, fmt.Errorf("leader is %016x, not %s", l, r.Via.Label())
		}
		return true, nil
	})
}

// verify waits, bounded, until the member list lacks the member and Via
// names a leader, and fills in the result.
func (r *Removal) verify(ctx context.Context, c *client, cluster pb.ClusterClient, res *Result, stepErr func(string, error, string) error) error {
	var names []string
	var leaderName string
	err := poll(ctx, r.opts.timeout(), func(ctx context.Context) (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, r.opts.timeout())
		defer cancel()
		resp, err := cluster.MemberList(cctx, &pb.MemberListRequest{Linearizable: true})
		if err != nil {
			return false, rpctypes.Error(err)
		}
		names, leaderName = names[:0], ""
		l, err := r.leader(ctx, c)
		if err != nil {
			return false, err
		}
		for _, pm := range resp.Members {
			if pm.ID == r.Member.ID {
				return false, errors.New("the member is still listed")
			}
			lbl := Member{ID: pm.ID, Name: pm.Name}.Label()
			names = append(names, lbl)
			if pm.ID == l {
				leaderName = lbl
			}
		}
		if leaderName == "" {
			return false, fmt.Errorf("no leader among the remaining members (leader id %016x)", l)
		}
		return true, nil
	})
	if err != nil {
		return stepErr("verify", err, "check etcdctl member list and etcdctl endpoint status --cluster")
	}
	res.Remaining, res.Leader = names, leaderName
	return nil
}

// poll runs cond until it reports done, ctx ends, or timeout passes; the
// error then carries cond's last failure.
func poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		done, err := cond(ctx)
		if done {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("not done within %s: %w", timeout, last)
		case <-time.After(pollEvery):
		}
	}
}
