package plan

import (
	"encoding/json"
	"testing"
)

type testDetail struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func TestDetailAs(t *testing.T) {
	var fromJSON Item
	if err := json.Unmarshal([]byte(`{"kind":"mount","target":"/x","action":"unmount","detail":{"id":7,"name":"n"}}`), &fromJSON); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		detail any
		want   testDetail
		ok     bool
	}{
		{"value", testDetail{ID: 1}, testDetail{ID: 1}, true},
		{"pointer", &testDetail{ID: 2}, testDetail{ID: 2}, true},
		{"nil pointer", (*testDetail)(nil), testDetail{}, false},
		{"none", nil, testDetail{}, false},
		{"from JSON", fromJSON.Detail, testDetail{ID: 7, Name: "n"}, true},
		{"wrong shape", map[string]any{"id": "seven"}, testDetail{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := DetailAs[testDetail](Item{Detail: tc.detail})
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
