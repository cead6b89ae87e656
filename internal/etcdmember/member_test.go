package etcdmember

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// fixtureMembers reads an `etcdctl member list -w json` answer.
func fixtureMembers(t *testing.T, name string) []Member {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var resp pb.MemberListResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ms := make([]Member, len(resp.Members))
	for i, pm := range resp.Members {
		ms[i] = fromPB(pm)
	}
	return ms
}

func TestMatch(t *testing.T) {
	members := fixtureMembers(t, "members-kubeadm.json")
	if len(members) != 7 {
		t.Fatalf("fixture: %d members, want 7", len(members))
	}
	tests := []struct {
		name   string
		target Target
		want   string // member name, "" for none; "#learner" for the unnamed learner
		reason error
	}{
		{"name and peer agree", Target{"cp-1", []string{"10.0.0.11"}}, "cp-1", nil},
		{"name only", Target{"cp-2", nil}, "cp-2", nil},
		{"name matches, address changed", Target{"cp-2", []string{"10.9.9.9"}}, "cp-2", nil},
		{"peer host only, node renamed", Target{"node-b", []string{"10.0.0.12"}}, "cp-2", nil},
		{"peer host by DNS name, case-insensitive", Target{"", []string{"CP-3.Example.COM."}}, "cp-3.example.com", nil},
		{"IPv6 peer host, bracketed and expanded", Target{"", []string{"[fd00:0::14]"}}, "cp-v6", nil},
		{"unstarted learner by peer host", Target{"cp-5", []string{"10.0.0.15"}}, "#learner", nil},
		{"client URL host is not a peer host", Target{"x", []string{"10.0.0.13"}}, "", nil},
		{"no substring match on address", Target{"x", []string{"10.0.0.1"}}, "", nil},
		{"no substring match on name", Target{"cp", nil}, "", nil},
		{"nothing matches: already gone", Target{"cp-9", []string{"10.0.0.99"}}, "", nil},
		{"name and peer conflict", Target{"cp-1", []string{"10.0.0.12"}}, "", ErrConflict},
		{"peer host selects two members", Target{"twin-a", []string{"10.0.0.16"}}, "", ErrAmbiguous},
		{"empty target", Target{}, "", ErrNoTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, err := match(members, tt.target)
			if tt.reason != nil {
				if !errors.Is(err, tt.reason) {
					t.Fatalf("err = %v, want %v", err, tt.reason)
				}
				if err.Member == "" || err.Hint == "" {
					t.Errorf("refusal without member or hint: %+v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected refusal: %v", err)
			}
			got := ""
			if idx >= 0 {
				got = members[idx].Name
				if members[idx].Learner {
					got = "#learner"
				}
			}
			if got != tt.want {
				t.Errorf("matched %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSameHost(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.0.0.1", "10.0.0.1", true},
		{"10.0.0.1", "10.0.0.10", false},
		{"::ffff:10.0.0.1", "10.0.0.1", true},
		{"[fd00::1]", "fd00:0:0::1", true},
		{"node-a", "NODE-A", true},
		{"node-a.", "node-a", true},
		{"node-a", "node-a.example", false},
		{"10.0.0.1", "node-a", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.a+"~"+tt.b, func(t *testing.T) {
			if got := sameHost(tt.a, tt.b); got != tt.want {
				t.Errorf("sameHost(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
