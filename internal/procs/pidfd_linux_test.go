package procs

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// TestPin pins the test process itself (nothing is signalled): the start
// time must match, 0 (PID alone) is refused, and a PID no process has is
// gone.
func TestPin(t *testing.T) {
	self := os.Getpid()
	st, err := ReadStat("/proc", self)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pid     int
		start   uint64
		pinned  bool
		refused error
	}{
		{"same start time", self, st.StartTime, true, nil},
		{"PID alone", self, 0, false, ErrNoStartTime},
		{"reused PID", self, st.StartTime + 1, false, nil},
		{"no such process", 1 << 22, 1, false, nil}, // PID_MAX_LIMIT: no PID reaches it
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Pin("/proc", tc.pid, tc.start)
			if !errors.Is(err, tc.refused) || (p != nil) != tc.pinned {
				t.Fatalf("Pin = %+v, %v; want pinned %v, error %v", p, err, tc.pinned, tc.refused)
			}
			if p == nil {
				return
			}
			defer p.Close()
			if p.PID != self || p.StartTime != st.StartTime {
				t.Errorf("Pin = %+v, want PID %d start %d", p, self, st.StartTime)
			}
			start := time.Now()
			if left := Wait(context.Background(), "/proc", []*Pinned{p}, 50*time.Millisecond, nil); len(left) != 1 {
				t.Errorf("Wait reports the running test process as exited")
			}
			if time.Since(start) < 50*time.Millisecond {
				t.Errorf("Wait returned before its timeout")
			}
		})
	}
}
