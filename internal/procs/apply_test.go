package procs

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/nodereset/nodereset/pkg/plan"
)

func TestDetailOf(t *testing.T) {
	d := Detail{PID: 42, StartTime: 777, Exe: "/usr/bin/kubelet", Ports: []int{10250}}
	var fromJSON any
	b, _ := json.Marshal(d)
	if err := json.Unmarshal(b, &fromJSON); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		item    plan.Item
		wantErr bool
		noDet   bool
	}{
		{"value", plan.Item{Target: "42", Detail: d}, false, false},
		{"pointer", plan.Item{Target: "42", Detail: &d}, false, false},
		{"plan read back from JSON", plan.Item{Target: "42", Detail: fromJSON}, false, false},
		{"no detail", plan.Item{Target: "42"}, true, true},
		{"detail that does not decode", plan.Item{Target: "42", Detail: map[string]any{"pid": "42"}}, true, true},
		{"zero start time", plan.Item{Target: "42", Detail: Detail{PID: 42}}, true, true},
		{"target differs", plan.Item{Target: "43", Detail: d}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := detailOf(tt.item)
			if tt.wantErr {
				if err == nil || errors.Is(err, ErrNoDetail) != tt.noDet {
					t.Fatalf("detailOf = %+v, %v; want error (ErrNoDetail: %v)", got, err, tt.noDet)
				}
				return
			}
			if err != nil || got.PID != 42 || got.StartTime != 777 || got.Exe != d.Exe || len(got.Ports) != 1 {
				t.Fatalf("detailOf = %+v, %v; want %+v", got, err, d)
			}
		})
	}
}
