package etcdmember

import (
	"errors"
	"fmt"
	"testing"
)

// cluster builds members from a pattern: H healthy voter, U unhealthy
// voter, L healthy learner, l unhealthy learner.
func cluster(pattern string) []Member {
	ms := make([]Member, len(pattern))
	for i, c := range pattern {
		ms[i] = Member{ID: uint64(i + 1), Name: fmt.Sprintf("m%d", i+1),
			Healthy: c == 'H' || c == 'L', Learner: c == 'L' || c == 'l'}
	}
	return ms
}

func TestQuorum(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		target  int
		reason  error // nil: allowed
		after   [3]int
	}{
		{"3 healthy, remove one", "HHH", 0, nil, [3]int{2, 2, 2}},
		{"3 with the target down", "UHH", 0, nil, [3]int{2, 2, 2}},
		{"3 with another down: quorum of 2 lost", "HHU", 0, ErrQuorumLoss, [3]int{2, 1, 2}},
		{"3 with two down: no quorum now", "HUU", 0, ErrNoQuorum, [3]int{2, 0, 2}},
		{"2 → 1, remaining healthy", "HH", 1, nil, [3]int{1, 1, 1}},
		{"2 → 1, remaining down: no quorum now", "HU", 0, ErrNoQuorum, [3]int{1, 0, 1}},
		{"2 → 1, target down: no quorum now", "UH", 0, ErrNoQuorum, [3]int{1, 1, 1}},
		{"last member", "H", 0, ErrLastMember, [3]int{0, 0, 1}},
		{"last voter with a learner", "HL", 0, ErrLastMember, [3]int{0, 0, 1}},
		{"learner from a single voter", "HL", 1, nil, [3]int{1, 1, 1}},
		{"unhealthy learner", "HHHl", 3, nil, [3]int{3, 3, 2}},
		{"learners do not count for quorum", "HUULL", 0, ErrNoQuorum, [3]int{2, 0, 2}},
		{"5 with 2 down, remove a healthy one", "HHHUU", 0, ErrQuorumLoss, [3]int{4, 2, 3}},
		{"5 with 1 down, remove a healthy one", "HHHHU", 0, nil, [3]int{4, 3, 3}},
		{"4 → 3 with one down", "HHHU", 0, nil, [3]int{3, 2, 2}},
		{"4 → 3 removing the down one", "HHHU", 3, nil, [3]int{3, 3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := cluster(tt.pattern)
			q := quorumFor(ms, tt.target)
			got := [3]int{q.VotersAfter, q.HealthyAfter, q.NeedAfter}
			if got != tt.after {
				t.Errorf("after = %v (voters, healthy, need), want %v; %s", got, tt.after, q)
			}
			err := q.check(ms[tt.target].Label())
			if tt.reason == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.reason) {
				t.Fatalf("err = %v, want %v", err, tt.reason)
			}
		})
	}
}

func TestPickVia(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		target  int
		leader  uint64
		want    int
	}{
		{"the leader when it is not the target", "HHH", 0, 3, 2},
		{"first healthy other when the target leads", "HHH", 0, 1, 1},
		{"skips the unhealthy", "HUH", 0, 1, 2},
		{"skips learners", "HLH", 2, 3, 0},
		{"never the target", "HUU", 0, 1, -1},
		{"no leader known", "UHH", 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickVia(cluster(tt.pattern), tt.target, tt.leader); got != tt.want {
				t.Errorf("pickVia = %d, want %d", got, tt.want)
			}
		})
	}
}
