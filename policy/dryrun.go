package policy

import (
	"context"
)

// The dry run: every rule's verdict for a request, with nothing created or consumed.

// DryRunReport is every rule's verdict for a request; nothing is created or consumed.
type DryRunReport struct {
	Profile string       `json:"profile,omitempty"`
	Outcome string       `json:"outcome"`
	Error   *Error       `json:"-"`
	Rules   []RuleResult `json:"rules"`
}

// DryRun runs selection and the whole chain without stopping at the first refusal.
func (r *Registrar) DryRun(ctx context.Context, sub Submission) (DryRunReport, Trace, error) {
	ev, tr, err := r.prepare(ctx, sub, nil)
	rep := DryRunReport{Profile: tr.Profile, Outcome: "refused"}
	if err != nil {
		e, ok := AsError(err)
		if !ok {
			return rep, tr, err
		}
		rep.Error = e
		rep.Rules = []RuleResult{{Rule: StepSelect, Verdict: Fail, Message: e.Description}}
		tr.Rules = rep.Rules
		return rep, tr, nil
	}
	ev.DryRun = true
	results, err := ev.Profile.Evaluate(ctx, ev, true)
	r.trace(ev, &tr)
	// Room for the select step before the rules and the create step after them: one allocation, not three.
	rep.Rules = make([]RuleResult, 0, len(results)+2)
	rep.Rules = append(append(rep.Rules, RuleResult{Rule: StepSelect, Verdict: Pass, Message: "profile " + ev.Profile.Name}), results...)
	tr.Rules = rep.Rules
	if err != nil {
		e, ok := AsError(err)
		if !ok {
			return rep, tr, err
		}
		rep.Error = e
		return rep, tr, nil
	}
	// The last thing a real registration can meet: the software's registration
	// already exists. Looking is read-only.
	step, e := r.duplicateStep(ctx, ev)
	rep.Rules = append(rep.Rules, step)
	tr.Rules = rep.Rules
	if e != nil {
		rep.Error = e
		return rep, tr, nil
	}
	rep.Outcome = "approved"
	return rep, tr, nil
}

func (r *Registrar) duplicateStep(ctx context.Context, ev *Evaluation) (RuleResult, *Error) {
	if ev.Settings.MultipleRegistrations {
		return RuleResult{Rule: StepCreate, Verdict: Pass, Message: "several registrations per software_id are allowed"}, nil
	}
	if r.Clients == nil {
		return RuleResult{Rule: StepCreate, Verdict: Skipped, Message: "skipped: offline, Hydra not asked whether the software is registered already"}, nil
	}
	id := ClientIDFor(ev.Profile.Name, ev.Statement.SoftwareID)
	if _, err := r.Clients.Get(ctx, id); err == nil {
		e := alreadyRegistered(ev.Statement.SoftwareID, id)
		return RuleResult{Rule: StepCreate, Verdict: Fail, Message: e.Description}, e
	}
	return RuleResult{Rule: StepCreate, Verdict: Pass}, nil
}
