package rancher

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Status of one item in a report.
type Status string

// The statuses.
const (
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
)

// Result is what happened to one object.
type Result struct {
	Object string `json:"object"`
	Action string `json:"action"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Report is what an Apply did and what remains for the operator.
type Report struct {
	Results []Result `json:"results"`
	// Remaining lists what is still there and why, with what to do.
	Remaining []string `json:"remaining,omitempty"`
}

// Failed reports whether any item failed or anything remains.
func (r *Report) Failed() bool {
	for _, x := range r.Results {
		if x.Status == StatusFailed {
			return true
		}
	}
	return len(r.Remaining) > 0
}

func (r *Report) add(object, action string, err error, detail string) error {
	res := Result{Object: object, Action: action, Status: StatusDone, Detail: detail}
	if err != nil {
		res.Status, res.Error = StatusFailed, err.Error()
		r.Results = append(r.Results, res)
		return &ItemError{Object: object, Action: action, Err: err}
	}
	r.Results = append(r.Results, res)
	return nil
}

// str is the string at fields of an unstructured object, "" when absent.
func str(obj map[string]any, fields ...string) string {
	s, _, _ := unstructured.NestedString(obj, fields...)
	return s
}
