package admin

import (
	"context"
	"fmt"
	"slices"

	"github.com/partyline/partyline/acl"
)

// Operations on a number's call flow.
const (
	OpFlowSet  = "number.flow.set"
	OpFlowShow = "number.flow.show"
)

type (
	FlowArgs struct {
		Number string   `json:"number"`
		Steps  []string `json:"steps,omitempty"` // USER[,USER...][:SECONDS]
		Then   string   `json:"then,omitempty"`
		Reset  bool     `json:"reset,omitempty"`
	}
	// FlowView is a number's call flow as it applies now.
	FlowView struct {
		Number  string     `json:"number"`
		Default bool       `json:"default"`
		Steps   []acl.Step `json:"steps"`
		Then    string     `json:"then"`
	}
)

func flowOps() map[string]opFunc {
	return map[string]opFunc{
		OpFlowSet: typed(func(ctx context.Context, s *Service, as string, a FlowArgs) (any, error) {
			var steps []acl.Step
			if !a.Reset {
				if len(a.Steps) == 0 {
					return nil, fmt.Errorf("%w: no steps: give --step USER[,USER...][:SECONDS] (repeatable), or --default", acl.ErrInvalid)
				}
				for _, raw := range a.Steps {
					st, err := acl.ParseStep(raw)
					if err != nil {
						return nil, err
					}
					steps = append(steps, st)
				}
			}
			if err := s.dir.SetFlow(as, a.Number, steps, a.Then); err != nil {
				return nil, err
			}
			e, _ := acl.NormalizeE164(a.Number)
			s.changed(as, OpFlowSet, "number", e, "steps", len(steps))
			return flowView(s.dir.Snapshot(), e), nil
		}),
		OpFlowShow: typed(func(ctx context.Context, s *Service, as string, a FlowArgs) (any, error) {
			snap, _, n, err := s.numberFor(as, a.Number, acl.NumberView)
			if err != nil {
				return nil, err
			}
			return flowView(snap, n.E164), nil
		}),
	}
}

func flowView(snap *acl.Snapshot, e164 string) FlowView {
	n, _ := snap.Number(e164)
	if n.Flow != nil {
		return FlowView{Number: e164, Steps: n.Flow.Steps, Then: n.Flow.Then}
	}
	v := FlowView{Number: e164, Default: true, Then: acl.ThenVoicemail, Steps: []acl.Step{}}
	for i := 0; i < len(n.Members); i += acl.RingCap {
		st := acl.Step{Seconds: acl.DefaultRingSeconds}
		for _, m := range n.Members[i:min(i+acl.RingCap, len(n.Members))] {
			st.Users = append(st.Users, m.User)
		}
		v.Steps = append(v.Steps, st)
	}
	return v
}

// inFlow: the default flow rings every member; a custom one, those it names.
func inFlow(n acl.Number, user string) bool {
	if n.Flow == nil {
		return true
	}
	for _, st := range n.Flow.Steps {
		if slices.Contains(st.Users, user) {
			return true
		}
	}
	return false
}
