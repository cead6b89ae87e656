package etcdmember

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/nodereset/nodereset/internal/testns"
)

// TestRealCluster runs the removal scenarios, in order, against one real
// 3-member etcd cluster on loopback, in a network and PID namespace of the
// test's own (nothing listens on the machine's loopback; every etcd dies
// with the namespace).
func TestRealCluster(t *testing.T) {
	bin := etcdPath(t)
	if !testns.Enter(t, testns.Net|testns.PID) {
		return
	}
	loUp(t)
	start := time.Now()
	c := newEtcdCluster(t, bin)
	initial := "m1=http://127.0.0.1:2380,m2=http://127.0.0.2:2380,m3=http://127.0.0.3:2380"
	for i, n := range []string{"m1", "m2", "m3"} {
		c.start(n, "127.0.0."+string(rune('1'+i)), initial, "new")
	}
	c.waitHealthy("m1", "m2", "m3")
	t.Logf("3 members up in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	opts := func() Options { return Options{Endpoints: c.endpoints(), Timeout: 3 * time.Second} }
	followers := func() []string {
		l := c.leader()
		var fs []string
		for _, m := range c.members() {
			if m.Name != l {
				fs = append(fs, m.Name)
			}
		}
		return fs
	}

	t.Run("name and peer host conflict refused", func(t *testing.T) {
		r, err := PlanRemoval(ctx, opts(), Target{Name: "m1", PeerHosts: []string{"127.0.0.2"}})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
		if !strings.Contains(err.Error(), "m1") || !strings.Contains(err.Error(), "m2") {
			t.Errorf("the error should name both members: %v", err)
		}
		if _, err := r.Apply(ctx); !errors.Is(err, ErrConflict) {
			t.Errorf("Apply of a refused plan: %v", err)
		}
		if got := c.memberNames(); got != "m1,m2,m3" {
			t.Errorf("members = %s", got)
		}
	})

	t.Run("learner removed directly", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := c.client().MemberAddAsLearner(cctx, []string{"http://127.0.0.5:2380"}); err != nil {
			t.Fatal(err)
		}
		c.start("m5", "127.0.0.5", initial+",m5=http://127.0.0.5:2380", "existing")
		c.waitAnswering("m5")
		r, err := PlanRemoval(ctx, opts(), Target{Name: "m5", PeerHosts: []string{"127.0.0.5"}})
		if err != nil {
			t.Fatalf("%v\n%s", err, strings.Join(r.Describe(), "\n"))
		}
		if r.Member == nil || !r.Member.Learner || !r.Quorum.Learner || r.MoveLeader || r.Quorum.VotersAfter != 3 {
			t.Fatalf("plan: %q", r.Describe())
		}
		if res, err := r.Apply(ctx); err != nil || res.AlreadyGone || len(res.Remaining) != 3 {
			t.Fatalf("Apply = %+v, %v\n%s", res, err, c.logs())
		}
		if got := c.memberNames(); got != "m1,m2,m3" {
			t.Errorf("members = %s", got)
		}
		c.procs["m5"].stop(t)
		delete(c.procs, "m5")
	})

	t.Run("quorum loss refused, then overridden", func(t *testing.T) {
		fs := followers()
		target, down := fs[0], fs[1]
		c.procs[down].stop(t)
		// Let the leader's transport notice the dead peer.
		time.Sleep(time.Second)
		t0 := time.Now()
		r, err := PlanRemoval(ctx, opts(), Target{Name: target})
		t.Logf("plan with a member down took %s", time.Since(t0).Round(time.Millisecond))
		if !errors.Is(err, ErrQuorumLoss) {
			t.Fatalf("err = %v, want ErrQuorumLoss", err)
		}
		for _, want := range []string{target, "--allow-quorum-loss"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		if r == nil || r.Quorum.HealthyAfter != 1 || r.Quorum.NeedAfter != 2 {
			t.Errorf("quorum = %+v", r)
		}
		o := opts()
		o.AllowQuorumLoss = true
		r, err = PlanRemoval(ctx, o, Target{Name: target})
		if err != nil || r.Overridden == nil || !errors.Is(r.Overridden, ErrQuorumLoss) {
			t.Fatalf("with AllowQuorumLoss: err %v, overridden %v", err, r.Overridden)
		}
		if !slices.ContainsFunc(r.Describe(), func(s string) bool { return strings.Contains(s, "WARNING") }) {
			t.Errorf("plan does not warn: %q", r.Describe())
		}
		// etcd's own strict reconfig check still refuses while a peer is
		// down: the override gets past nodereset's check, not etcd's.
		_, err = r.Apply(ctx)
		var se *StepError
		if !errors.As(err, &se) || se.Step != "remove" || !errors.Is(err, rpctypes.ErrUnhealthy) {
			t.Fatalf("Apply = %v, want etcd's unhealthy-cluster refusal", err)
		}
		if !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), "bring them back") {
			t.Errorf("error should name the member and say what to do: %v", err)
		}
		if got := c.memberNames(); got != "m1,m2,m3" {
			t.Fatalf("members = %s", got)
		}
		c.start(down, c.procs[down].ip, initial, "new")
		c.waitHealthy(down)
	})

	t.Run("follower matched by peer host only", func(t *testing.T) {
		target := followers()[0]
		tg := Target{Name: "renamed-node", PeerHosts: []string{c.procs[target].ip}}
		r, err := PlanRemoval(ctx, opts(), tg)
		if err != nil {
			t.Fatalf("%v\n%s", err, strings.Join(r.Describe(), "\n"))
		}
		if r.Member == nil || r.Member.Name != target || r.MoveLeader || r.Via.Name == target {
			t.Fatalf("plan: %q", r.Describe())
		}
		res, err := r.Apply(ctx)
		if err != nil {
			t.Fatalf("Apply: %v\n%s", err, c.logs())
		}
		if res.AlreadyGone || res.Leader == "" || len(res.Remaining) != 2 || res.LeaderMovedTo != "" {
			t.Errorf("result = %+v", res)
		}
		if got := c.memberNames(); strings.Contains(got, target) {
			t.Errorf("members = %s, still has %s", got, target)
		}
		c.procs[target].stop(t)
		delete(c.procs, target)

		// A second run finds nothing and changes nothing.
		r, err = PlanRemoval(ctx, opts(), tg)
		if err != nil || r.Member != nil {
			t.Fatalf("second plan: %v %q", err, r.Describe())
		}
		if !strings.Contains(strings.Join(r.Describe(), "\n"), "already gone") {
			t.Errorf("describe = %q", r.Describe())
		}
		if res, err := r.Apply(ctx); err != nil || !res.AlreadyGone {
			t.Errorf("second apply = %+v, %v", res, err)
		}
	})

	// Back to three members: m4 joins as a new member.
	t.Run("add m4", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := c.client().MemberAdd(cctx, []string{"http://127.0.0.4:2380"}); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for n, p := range c.procs {
			parts = append(parts, n+"="+p.peerURL())
		}
		parts = append(parts, "m4=http://127.0.0.4:2380")
		c.start("m4", "127.0.0.4", strings.Join(parts, ","), "existing")
		c.waitHealthy("m4")
		if n := len(c.members()); n != 3 {
			t.Fatalf("%d members", n)
		}
	})

	t.Run("leader removed after leadership moved", func(t *testing.T) {
		leader := c.leader()
		tg := Target{Name: leader, PeerHosts: []string{c.procs[leader].ip}}
		r, err := PlanRemoval(ctx, opts(), tg)
		if err != nil {
			t.Fatal(err)
		}
		if !r.MoveLeader || r.Via == nil || r.Via.Name == leader {
			t.Fatalf("plan: %q", r.Describe())
		}
		t0 := time.Now()
		res, err := r.Apply(ctx)
		if err != nil {
			t.Fatalf("Apply: %v\n%s", err, c.logs())
		}
		t.Logf("leader removal took %s", time.Since(t0).Round(time.Millisecond))
		if res.LeaderMovedTo != r.Via.Label() || res.Leader != r.Via.Label() || len(res.Remaining) != 2 {
			t.Errorf("result = %+v", res)
		}
		if now := c.leader(); now == leader {
			t.Errorf("leader is still %s", now)
		}
		c.procs[leader].stop(t)
		delete(c.procs, leader)
	})

	t.Run("2 → 1 with the remaining member healthy", func(t *testing.T) {
		target := followers()[0]
		r, err := PlanRemoval(ctx, opts(), Target{Name: target})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(r.Describe(), "\n"), "2 → 1") {
			t.Errorf("plan does not say 2 → 1: %q", r.Describe())
		}
		res, err := r.Apply(ctx)
		if err != nil {
			t.Fatalf("Apply: %v\n%s", err, c.logs())
		}
		if len(res.Remaining) != 1 || res.Leader == "" {
			t.Errorf("result = %+v", res)
		}
		c.procs[target].stop(t)
		delete(c.procs, target)
	})

	t.Run("last member refused, even with AllowQuorumLoss", func(t *testing.T) {
		last := c.members()[0].Name
		o := opts()
		o.AllowQuorumLoss = true
		_, err := PlanRemoval(ctx, o, Target{Name: last})
		if !errors.Is(err, ErrLastMember) || !strings.Contains(err.Error(), last) {
			t.Fatalf("err = %v, want ErrLastMember naming %s", err, last)
		}
		if got := c.memberNames(); got != last {
			t.Errorf("members = %s", got)
		}
	})
	t.Logf("all scenarios in %s", time.Since(start).Round(time.Millisecond))
}
