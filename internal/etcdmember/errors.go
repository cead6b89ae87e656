package etcdmember

import (
	"errors"
	"fmt"
	"strings"
)

// Reasons for a refusal; test them with errors.Is on a *RefusedError.
var (
	ErrNoTarget      = errors.New("no node name or peer host given")
	ErrAmbiguous     = errors.New("more than one etcd member matches")
	ErrConflict      = errors.New("the member's name and peer hosts disagree")
	ErrLastMember    = errors.New("it is the last voting member of the etcd cluster")
	ErrNoQuorum      = errors.New("the etcd cluster has no quorum now")
	ErrQuorumLoss    = errors.New("removing it would leave the etcd cluster without quorum")
	ErrNoHealthyPeer = errors.New("no other healthy etcd member to talk to")
)

// RefusedError says why a removal was not planned. Nothing was changed.
type RefusedError struct {
	Member string // the member (or the target when none matched)
	Reason error  // one of the Err* reasons above
	Hint   string // what the operator can do
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("etcd member %s not removed: %v: %s", e.Member, e.Reason, e.Hint)
}

func (e *RefusedError) Unwrap() error { return e.Reason }

func refuse(member string, reason error, hint string) *RefusedError {
	return &RefusedError{Member: member, Reason: reason, Hint: hint}
}

// ClusterError is a failure to read the cluster at all while planning.
type ClusterError struct {
	Endpoints []string
	Err       error
}

func (e *ClusterError) Error() string {
	return fmt.Sprintf("etcd at %s: %v (check --etcd-endpoints and the client certificates)",
		strings.Join(e.Endpoints, ","), e.Err)
}

func (e *ClusterError) Unwrap() error { return e.Err }

// StepError is a failure while applying a removal: Step is "move leader",
// "remove" or "verify"; Via is the member the call went to.
type StepError struct {
	Member, Via, Step string
	Err               error
	Hint              string
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("etcd member %s: %s via %s: %v", e.Member, e.Step, e.Via, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }
