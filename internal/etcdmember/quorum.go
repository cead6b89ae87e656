package etcdmember

import "fmt"

// Quorum is the arithmetic behind a removal: raft needs a majority of the
// voting members (learners do not vote) both to commit the removal now and
// to keep working after it.
type Quorum struct {
	Learner       bool // the target is a learner: the voters do not change
	Voters        int  // voting members now
	HealthyVoters int
	NeedNow       int // majority of Voters: needed to commit the removal
	VotersAfter   int
	HealthyAfter  int
	NeedAfter     int // majority of VotersAfter
}

func majority(n int) int { return n/2 + 1 }

// quorumFor computes the arithmetic for removing members[target].
func quorumFor(members []Member, target int) Quorum {
	q := Quorum{Learner: members[target].Learner}
	for _, m := range members {
		if m.Learner {
			continue
		}
		q.Voters++
		if m.Healthy {
			q.HealthyVoters++
		}
	}
	q.NeedNow = majority(q.Voters)
	q.VotersAfter, q.HealthyAfter = q.Voters, q.HealthyVoters
	if !q.Learner {
		q.VotersAfter--
		if members[target].Healthy {
			q.HealthyAfter--
		}
	}
	q.NeedAfter = majority(q.VotersAfter)
	return q
}

// check returns the reason the removal must not happen, or nil. The last
// voter can never be removed; the two quorum reasons are what
// AllowQuorumLoss overrides (see Removal).
func (q Quorum) check(member string) *RefusedError {
	switch {
	case !q.Learner && q.Voters <= 1:
		return refuse(member, ErrLastMember,
			"an etcd cluster cannot remove its last member; reset the node and wipe its etcd data dir instead")
	case q.HealthyVoters < q.NeedNow:
		return refuse(member, ErrNoQuorum, fmt.Sprintf(
			"%d of %d voting members are healthy, %d are needed to commit a removal; bring members back (or restore the cluster from a snapshot) first",
			q.HealthyVoters, q.Voters, q.NeedNow))
	case q.HealthyAfter < q.NeedAfter:
		return refuse(member, ErrQuorumLoss, fmt.Sprintf(
			"%d voting members would remain, %d of them healthy, %d are needed; bring the unhealthy members back first, or pass --allow-quorum-loss",
			q.VotersAfter, q.HealthyAfter, q.NeedAfter))
	}
	return nil
}

func (q Quorum) String() string {
	if q.Learner {
		return fmt.Sprintf("learner: the %d voting members (%d healthy) are unchanged", q.Voters, q.HealthyVoters)
	}
	return fmt.Sprintf("voting members %d → %d, healthy %d → %d, quorum %d → %d",
		q.Voters, q.VotersAfter, q.HealthyVoters, q.HealthyAfter, q.NeedNow, q.NeedAfter)
}
