// Package etcdmember removes a control-plane node's member from a stacked
// etcd cluster (kubeadm), the way an operator should: from a different,
// healthy member, never the last member, never breaking quorum unless told
// to, with leadership moved away first, and verified afterwards.
//
// PlanRemoval reads the cluster and returns a Removal (the plan, a value);
// Apply carries it out once. A member already gone is success, so a second
// run is a no-op.
package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nodereset/nodereset/pkg/host"
)

// Options says how to reach etcd.
type Options struct {
	Endpoints       []string // client URLs of (some of) the members
	CACert          string   // client TLS files; all empty → plain http
	Cert, Key       string
	AllowQuorumLoss bool          // remove even when quorum would be lost
	Timeout         time.Duration // per call and per wait; default 5 s
	Log             *slog.Logger  // nil → discard
}

// DefaultTimeout bounds every etcd call and every wait.
const DefaultTimeout = 5 * time.Second

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// DefaultTLS returns kubeadm's etcd client certificate files on h (the
// healthcheck client, which kubeadm itself uses for member operations), as
// paths nodereset can open, and ok=false unless all three exist.
func DefaultTLS(h *host.Host) (ca, cert, key string, ok bool) {
	const dir = "/etc/kubernetes/pki/etcd/"
	files := [3]string{dir + "ca.crt", dir + "healthcheck-client.crt", dir + "healthcheck-client.key"}
	var out [3]string
	for i, f := range files {
		p, err := h.Resolve(f)
		if err != nil {
			return "", "", "", false
		}
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			return "", "", "", false
		}
		out[i] = p
	}
	return out[0], out[1], out[2], true
}

// Removal is the plan for one target. Member is nil when no member matches
// (already gone: Apply does nothing).
type Removal struct {
	Target  Target
	Members []Member // the whole cluster as read while planning
	Leader  uint64   // leader ID reported by the healthy members, 0 if none
	Member  *Member  // the member to remove
	Via     *Member  // the healthy other member the calls go to
	Quorum  Quorum
	// MoveLeader: the target is the leader; leadership goes to Via first.
	MoveLeader bool
	// Refused is why the removal must not happen (also returned by
	// PlanRemoval and by Apply); Overridden is a quorum refusal that
	// AllowQuorumLoss turned into a warning.
	Refused    *RefusedError
	Overridden *RefusedError

	opts Options
}

// PlanRemoval reads the member list and each member's health, and plans the
// removal of t's member. It changes nothing. On a refusal it returns the
// Removal as well as the *RefusedError, so that a dry run can show why.
func PlanRemoval(ctx context.Context, o Options, t Target) (*Removal, error) {
	if len(o.Endpoints) == 0 {
		return nil, &ClusterError{Err: errors.New("no etcd endpoints given")}
	}
	c, err := dial(o)
	if err != nil {
		return nil, err
	}
	defer c.close()
	members, leader, err := c.view(ctx)
	if err != nil {
		return nil, err
	}
	r := &Removal{Target: t, Members: members, Leader: leader, opts: o}
	idx, rerr := match(members, t)
	if rerr != nil {
		r.Refused = rerr
		return r, rerr
	}
	if idx < 0 {
		return r, nil
	}
	m := members[idx]
	r.Member = &m
	r.Quorum = quorumFor(members, idx)
	if rerr := r.Quorum.check(m.Label()); rerr != nil {
		if errors.Is(rerr, ErrLastMember) || !o.AllowQuorumLoss {
			r.Refused = rerr
			return r, rerr
		}
		r.Overridden = rerr
		o.log().Warn("etcd quorum check overridden", "member", m.Label(), "reason", rerr.Error())
	}
	via := pickVia(members, idx, leader)
	if via < 0 {
		r.Refused = refuse(m.Label(), ErrNoHealthyPeer,
			"every other voting member is unreachable or unhealthy; check them with etcdctl endpoint status --cluster")
		return r, r.Refused
	}
	v := members[via]
	r.Via = &v
	r.MoveLeader = leader == m.ID
	return r, nil
}

// pickVia chooses the member the removal goes through: never the target,
// only a healthy voter (learners refuse most requests), the leader when it
// qualifies (it commits without forwarding), else the first in list order.
func pickVia(members []Member, target int, leader uint64) int {
	first := -1
	for i, m := range members {
		if i == target || m.Learner || !m.Healthy {
			continue
		}
		if m.ID == leader {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return first
}

// Describe is the plan in lines, for --dry-run and the report.
func (r *Removal) Describe() []string {
	if r.Refused != nil && r.Member == nil {
		return []string{"etcd: " + r.Refused.Error()}
	}
	if r.Member == nil {
		return []string{fmt.Sprintf("etcd: no member matches %s among %d members: already gone, nothing to do", r.Target, len(r.Members))}
	}
	m := r.Member
	kind := "voting member"
	if m.Learner {
		kind = "learner"
	}
	lines := []string{fmt.Sprintf("etcd: remove %s %s (peer %v) of %d members; %s", kind, m.Label(), m.PeerURLs, len(r.Members), r.Quorum)}
	for _, o := range r.Members {
		if !o.Healthy {
			lines = append(lines, fmt.Sprintf("etcd: member %s is unhealthy: %s", o.Label(), o.Problem))
		}
	}
	if r.Refused != nil {
		return append(lines, "etcd: REFUSED: "+r.Refused.Error())
	}
	if r.Overridden != nil {
		lines = append(lines, "etcd: WARNING (--allow-quorum-loss): "+r.Overridden.Error())
	}
	lines = append(lines, fmt.Sprintf("etcd: talk to %s at %s", r.Via.Label(), r.Via.Endpoint))
	if r.MoveLeader {
		lines = append(lines, fmt.Sprintf("etcd: %s is the leader: move leadership to %s first", m.Label(), r.Via.Label()))
	}
	if !m.Learner && r.Quorum.Voters == 2 {
		lines = append(lines, fmt.Sprintf("etcd: 2 → 1 members: allowed because the remaining member %s is healthy; the cluster has no fault tolerance until a member is added", r.Via.Label()))
	}
	return append(lines, "etcd: then check that the member is gone and the cluster has a leader")
}
