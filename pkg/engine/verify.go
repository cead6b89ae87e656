package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/nodereset/nodereset/pkg/plan"
)

// CheckResult is the outcome of one rejoin check.
type CheckResult struct {
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// VerifyReport says whether a host is clean: nothing left to plan and every
// rejoin check passing.
type VerifyReport struct {
	Clean   bool          `json:"clean"`
	Residue []plan.Item   `json:"residue"`
	Checks  []CheckResult `json:"checks"`
	// Errors lists what could not be checked; a report with errors is not
	// clean even when it found no residue.
	Errors []string `json:"errors,omitempty"`
}

// ErrCouldNotCheck wraps every failure to look at something during verify.
var ErrCouldNotCheck = errors.New("could not check")

// Verify re-discovers the host and runs the checks. The error, when not nil,
// wraps ErrCouldNotCheck: the report is then incomplete.
func Verify(ctx context.Context, env *Env, phases []Phase, checks []Check) (*VerifyReport, error) {
	p, perr := Plan(ctx, env, phases)
	r := &VerifyReport{Residue: p.Items(), Checks: []CheckResult{}}
	if r.Residue == nil {
		r.Residue = []plan.Item{}
	}
	var errs []error
	if perr != nil {
		errs = append(errs, perr)
	}
	for _, c := range checks {
		problems, err := c.Run(ctx, env)
		res := CheckResult{Name: c.Name(), OK: err == nil && len(problems) == 0, Problems: problems}
		if err != nil {
			res.Error = err.Error()
			errs = append(errs, fmt.Errorf("check %s: %w", c.Name(), err))
		}
		r.Checks = append(r.Checks, res)
	}
	for _, e := range errs {
		r.Errors = append(r.Errors, e.Error())
	}
	r.Clean = len(errs) == 0 && len(r.Residue) == 0
	for _, c := range r.Checks {
		r.Clean = r.Clean && c.OK
	}
	if len(errs) > 0 {
		return r, fmt.Errorf("%w: %w", ErrCouldNotCheck, errors.Join(errs...))
	}
	return r, nil
}
