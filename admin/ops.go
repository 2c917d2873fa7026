package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
)

// opFunc runs one operation for the acting user as ("" = operator).
type opFunc func(ctx context.Context, s *Service, as string, args json.RawMessage) (any, error)

// Operation names: one per CLI command.
const (
	OpUserAdd         = "user.add"
	OpUserList        = "user.list"
	OpUserRemove      = "user.remove"
	OpUserSetRole     = "user.set-role"
	OpUserSetPassword = "user.set-password"
	OpPlanShow        = "plan.show"
	OpPlanSet         = "plan.set"
	OpNumberAdd       = "number.add"
	OpNumberList      = "number.list"
	OpNumberShow      = "number.show"
	OpNumberSet       = "number.set"
	OpNumberRemove    = "number.remove"
	OpMemberAdd       = "number.member.add"
	OpMemberRemove    = "number.member.remove"
	OpMemberSetRole   = "number.member.set-role"
	OpTrunkAdd        = "trunk.add"
	OpTrunkList       = "trunk.list"
	OpTrunkRemove     = "trunk.remove"
	OpRegistrations   = "registrations.list"
	OpCalls           = "calls.list"
	OpFlowSet         = "number.flow.set"
	OpFlowShow        = "number.flow.show"
	OpNumberSetTrunk  = "number.set-trunk"
	OpUserSetDefault  = "user.set-default-number"
	OpContactAdd      = "contact.add"
	OpContactList     = "contact.list"
	OpContactRemove   = "contact.remove"
	OpVoicemailList   = "voicemail.list"
	OpVoicemailHeard  = "voicemail.heard"
	OpVoicemailDelete = "voicemail.delete"
	OpVoicemailAudio  = "voicemail.export"
	OpGreetingSet     = "voicemail.greeting.set"
	OpCallShow        = "calls.show"
)

// Arguments of the operations.
type (
	UserArgs struct {
		Name     string `json:"name"`
		Password string `json:"password,omitempty"`
		Role     string `json:"role,omitempty"`
		Email    string `json:"email,omitempty"`
	}
	PlanArgs struct {
		Plan string `json:"plan"`
	}
	NumberArgs struct {
		Number string  `json:"number"`
		Name   *string `json:"name,omitempty"`
	}
	MemberArgs struct {
		Number string `json:"number"`
		User   string `json:"user"`
		Role   string `json:"role,omitempty"`
	}
	TrunkArgs struct {
		Name    string   `json:"name"`
		Address string   `json:"address,omitempty"`
		Allow   []string `json:"allow,omitempty"`
	}
)

// Results of the operations, as the CLI prints them with -o json.
type (
	UserView struct {
		Name    string   `json:"name"`
		Email   string   `json:"email,omitempty"`
		Role    string   `json:"role"`
		Numbers []string `json:"numbers"`
	}
	PlanView struct {
		Plan              string `json:"plan"`
		MaxUsersPerNumber int    `json:"max_users_per_number"`
		RingCap           int    `json:"ring_cap"`
	}
	MemberView struct {
		User    string         `json:"user"`
		Role    string         `json:"role"`
		Added   time.Time      `json:"added"`
		Devices []Registration `json:"devices"`
		// WouldRing: a call now would ring this member (a registered
		// device, and a step of the number's flow names them).
		WouldRing bool `json:"would_ring"`
	}
	// Registration is one registered device.
	Registration struct {
		User      string    `json:"user"`
		Contact   string    `json:"contact"`
		Source    string    `json:"source"`
		Transport string    `json:"transport"`
		UserAgent string    `json:"user_agent"`
		ExpiresAt time.Time `json:"expires_at"`
	}
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
	TrunkOfArgs struct {
		Number string `json:"number"`
		Trunk  string `json:"trunk,omitempty"`
		User   string `json:"user,omitempty"`
	}
	// ContactArgs adds contacts (one from the CLI flags, many from an
	// imported file: all or none), or names one to remove.
	ContactArgs struct {
		Contacts []inbox.Contact `json:"contacts,omitempty"`
		ID       string          `json:"id,omitempty"`
	}
	VoicemailArgs struct {
		Number string `json:"number,omitempty"`
		ID     string `json:"id,omitempty"`
		// PCM is 8 kHz 16-bit little-endian mono audio (greeting set); empty
		// with Reset restores the default greeting.
		PCM   []byte `json:"pcm,omitempty"`
		Reset bool   `json:"reset,omitempty"`
	}
	// VoicemailAudio is a message with its audio, for export.
	VoicemailAudio struct {
		Voicemail inbox.Voicemail `json:"voicemail"`
		PCM       []byte          `json:"pcm"`
	}
	CallArgs struct {
		Number string `json:"number,omitempty"`
		Limit  int    `json:"limit,omitempty"`
		ID     string `json:"id,omitempty"`
	}
	RegistrationArgs struct {
		User string `json:"user,omitempty"`
	}
	NumberView struct {
		Number   string       `json:"number"`
		Name     string       `json:"name"`
		Users    int          `json:"users"`
		MaxUsers int          `json:"max_users"`
		Members  []MemberView `json:"members"`
	}
	TrunkView struct {
		Name    string   `json:"name"`
		Address string   `json:"address"`
		Allow   []string `json:"allow"`
	}
	// Done answers an operation that removes something.
	Done struct {
		Done string `json:"done"`
	}
)

var ops = map[string]opFunc{
	OpUserAdd: typed(func(ctx context.Context, s *Service, as string, a UserArgs) (any, error) {
		role, err := roleOrMember(a.Role)
		if err != nil {
			return nil, err
		}
		if err := s.dir.AddUser(as, acl.NewUser{Name: a.Name, Password: a.Password, Role: role, Email: a.Email}); err != nil {
			return nil, err
		}
		s.changed(as, OpUserAdd, "target", a.Name, "role", role.String())
		return userView(s.dir.Snapshot(), a.Name), nil
	}),
	OpUserList: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
		snap, actor, err := s.may(as, acl.UserList)
		if err != nil {
			return nil, err
		}
		out := []UserView{}
		for _, u := range snap.Users() {
			v := userView(snap, u.Name)
			// Memberships show only for numbers the actor may see.
			v.Numbers = slices.DeleteFunc(v.Numbers, func(e string) bool {
				return acl.Decide(actor, acl.NumberView, acl.Target{NumberRole: snap.MemberRole(e, actor.Name)}) != nil
			})
			out = append(out, v)
		}
		return out, nil
	}),
	OpUserRemove: typed(func(ctx context.Context, s *Service, as string, a UserArgs) (any, error) {
		if err := s.dir.RemoveUser(as, a.Name); err != nil {
			return nil, err
		}
		s.changed(as, OpUserRemove, "target", a.Name)
		return Done{"removed user " + a.Name}, nil
	}),
	OpUserSetRole: typed(func(ctx context.Context, s *Service, as string, a UserArgs) (any, error) {
		r, err := acl.ParseRole(a.Role)
		if err != nil {
			return nil, err
		}
		if err := s.dir.SetUserRole(as, a.Name, r); err != nil {
			return nil, err
		}
		s.changed(as, OpUserSetRole, "target", a.Name, "role", r.String())
		return userView(s.dir.Snapshot(), a.Name), nil
	}),
	OpUserSetPassword: typed(func(ctx context.Context, s *Service, as string, a UserArgs) (any, error) {
		if err := s.dir.SetPassword(as, a.Name, a.Password); err != nil {
			return nil, err
		}
		s.changed(as, OpUserSetPassword, "target", a.Name)
		return Done{"changed the password of " + a.Name}, nil
	}),
	OpPlanShow: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
		snap, _, err := s.may(as, acl.PlanShow)
		if err != nil {
			return nil, err
		}
		return planView(snap.Plan()), nil
	}),
	OpPlanSet: typed(func(ctx context.Context, s *Service, as string, a PlanArgs) (any, error) {
		p, err := acl.ParsePlan(a.Plan)
		if err != nil {
			return nil, err
		}
		if err := s.dir.SetPlan(as, p); err != nil {
			return nil, err
		}
		s.changed(as, OpPlanSet, "plan", p.String())
		return planView(p), nil
	}),
	OpNumberAdd: typed(func(ctx context.Context, s *Service, as string, a NumberArgs) (any, error) {
		name := ""
		if a.Name != nil {
			name = *a.Name
		}
		e, err := s.dir.AddNumber(as, a.Number, name)
		if err != nil {
			return nil, err
		}
		s.changed(as, OpNumberAdd, "number", e)
		return s.numberView(s.dir.Snapshot(), e), nil
	}),
	OpNumberList: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
		snap := s.dir.Snapshot()
		actor, err := snap.Actor(as)
		if err != nil {
			return nil, err
		}
		out := []NumberView{}
		for _, n := range snap.Numbers() {
			if acl.Decide(actor, acl.NumberView, acl.Target{NumberRole: n.Role(actor.Name)}) == nil {
				out = append(out, s.numberView(snap, n.E164))
			}
		}
		return out, nil
	}),
	OpNumberShow: typed(func(ctx context.Context, s *Service, as string, a NumberArgs) (any, error) {
		snap, _, n, err := s.numberFor(as, a.Number, acl.NumberView)
		if err != nil {
			return nil, err
		}
		return s.numberView(snap, n.E164), nil
	}),
	OpNumberSet: typed(func(ctx context.Context, s *Service, as string, a NumberArgs) (any, error) {
		if a.Name == nil {
			return nil, fmt.Errorf("%w: nothing to change: give --name TEXT", acl.ErrInvalid)
		}
		if err := s.dir.SetNumberName(as, a.Number, *a.Name); err != nil {
			return nil, err
		}
		e, _ := acl.NormalizeE164(a.Number)
		s.changed(as, OpNumberSet, "number", e)
		return s.numberView(s.dir.Snapshot(), e), nil
	}),
	OpNumberRemove: typed(func(ctx context.Context, s *Service, as string, a NumberArgs) (any, error) {
		if err := s.dir.RemoveNumber(as, a.Number); err != nil {
			return nil, err
		}
		e, _ := acl.NormalizeE164(a.Number)
		s.changed(as, OpNumberRemove, "number", e)
		return Done{"removed number " + e}, nil
	}),
	OpMemberAdd: typed(func(ctx context.Context, s *Service, as string, a MemberArgs) (any, error) {
		role, err := roleOrMember(a.Role)
		if err != nil {
			return nil, err
		}
		return s.memberChange(as, OpMemberAdd, a, role, s.dir.AddMember)
	}),
	OpMemberRemove: typed(func(ctx context.Context, s *Service, as string, a MemberArgs) (any, error) {
		if err := s.dir.RemoveMember(as, a.Number, a.User); err != nil {
			return nil, err
		}
		e, _ := acl.NormalizeE164(a.Number)
		s.changed(as, OpMemberRemove, "number", e, "target", a.User)
		return Done{"removed " + a.User + " from " + e}, nil
	}),
	OpMemberSetRole: typed(func(ctx context.Context, s *Service, as string, a MemberArgs) (any, error) {
		r, err := acl.ParseRole(a.Role)
		if err != nil {
			return nil, err
		}
		return s.memberChange(as, OpMemberSetRole, a, r, s.dir.SetMemberRole)
	}),
	OpTrunkAdd: typed(func(ctx context.Context, s *Service, as string, a TrunkArgs) (any, error) {
		if err := s.dir.AddTrunk(as, a.Name, a.Address, a.Allow); err != nil {
			return nil, err
		}
		s.changed(as, OpTrunkAdd, "trunk", a.Name)
		t, _ := s.dir.Snapshot().Trunk(a.Name)
		return trunkView(t), nil
	}),
	OpTrunkList: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
		snap, _, err := s.may(as, acl.TrunkList)
		if err != nil {
			return nil, err
		}
		out := []TrunkView{}
		for _, t := range snap.Trunks() {
			out = append(out, trunkView(t))
		}
		return out, nil
	}),
	OpRegistrations: typed(func(ctx context.Context, s *Service, as string, a RegistrationArgs) (any, error) {
		snap := s.dir.Snapshot()
		actor, err := snap.Actor(as)
		if err != nil {
			return nil, err
		}
		if a.User != "" {
			if _, ok := snap.User(a.User); !ok {
				return nil, fmt.Errorf("%w: unknown user %q: see \"partyline user list\"", acl.ErrNotFound, a.User)
			}
		}
		// Owners and admins see every device; others see their own.
		manager := actor.Operator || actor.Role == acl.RoleOwner || actor.Role == acl.RoleAdmin
		if !manager && a.User != "" && a.User != actor.Name {
			return nil, fmt.Errorf("%w: %s (workspace %s) may see only their own devices: only workspace owners and admins see everyone's", acl.ErrForbidden, actor.Name, actor.Role)
		}
		if !manager {
			a.User = actor.Name
		}
		out := []Registration{}
		for _, u := range snap.Users() {
			if a.User == "" || a.User == u.Name {
				out = append(out, s.registrations(u.Name)...)
			}
		}
		return out, nil
	}),
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
	OpNumberSetTrunk: typed(func(ctx context.Context, s *Service, as string, a TrunkOfArgs) (any, error) {
		if err := s.dir.SetNumberTrunk(as, a.Number, a.Trunk); err != nil {
			return nil, err
		}
		e, _ := acl.NormalizeE164(a.Number)
		s.changed(as, OpNumberSetTrunk, "number", e, "trunk", a.Trunk)
		return Done{e + " now calls out through trunk " + a.Trunk}, nil
	}),
	OpUserSetDefault: typed(func(ctx context.Context, s *Service, as string, a TrunkOfArgs) (any, error) {
		if err := s.dir.SetDefaultNumber(as, a.User, a.Number); err != nil {
			return nil, err
		}
		e, _ := acl.NormalizeE164(a.Number)
		s.changed(as, OpUserSetDefault, "target", a.User, "number", e)
		return Done{a.User + " now calls and texts out as " + e}, nil
	}),
	OpContactAdd: typed(func(ctx context.Context, s *Service, as string, a ContactArgs) (any, error) {
		if _, err := s.dir.Snapshot().Actor(as); err != nil {
			return nil, err
		}
		if len(a.Contacts) == 0 {
			return nil, fmt.Errorf("%w: no contacts given", acl.ErrInvalid)
		}
		added, err := s.box.AddContacts(a.Contacts)
		if err != nil {
			return nil, contactErr(err)
		}
		s.changed(as, OpContactAdd, "contacts", len(added))
		return added, nil
	}),
	OpContactList: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
		if _, err := s.dir.Snapshot().Actor(as); err != nil {
			return nil, err
		}
		return s.box.Contacts()
	}),
	OpContactRemove: typed(func(ctx context.Context, s *Service, as string, a ContactArgs) (any, error) {
		if _, err := s.dir.Snapshot().Actor(as); err != nil {
			return nil, err
		}
		c, err := s.box.RemoveContact(a.ID)
		if err != nil {
			return nil, contactErr(err)
		}
		s.changed(as, OpContactRemove, "target", c.ID)
		return Done{"removed contact " + c.Name}, nil
	}),
	OpVoicemailList: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
		numbers, err := s.usableNumbers(as, a.Number)
		if err != nil {
			return nil, err
		}
		return s.box.Voicemails(numbers)
	}),
	OpVoicemailHeard: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
		actor, v, err := s.voicemailFor(as, a.ID, acl.NumberUse)
		if err != nil {
			return nil, err
		}
		v, err = s.box.MarkHeard(v.ID, actorName(actor), time.Now())
		if err != nil {
			return nil, err
		}
		s.voicemailChanged(v.Number)
		return v, nil
	}),
	OpVoicemailAudio: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
		actor, v, err := s.voicemailFor(as, a.ID, acl.NumberUse)
		if err != nil {
			return nil, err
		}
		pcm, err := s.box.VoicemailAudio(v.ID)
		if err != nil {
			return nil, err
		}
		if v, err = s.box.MarkHeard(v.ID, actorName(actor), time.Now()); err != nil {
			return nil, err
		}
		s.voicemailChanged(v.Number)
		return VoicemailAudio{Voicemail: v, PCM: pcm}, nil
	}),
	OpVoicemailDelete: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
		_, v, err := s.voicemailFor(as, a.ID, acl.NumberSettings)
		if err != nil {
			return nil, err
		}
		if err := s.box.DeleteVoicemail(v.ID); err != nil {
			return nil, err
		}
		s.changed(as, OpVoicemailDelete, "number", v.Number, "target", v.ID)
		s.voicemailChanged(v.Number)
		return Done{"deleted voicemail " + v.ID}, nil
	}),
	OpGreetingSet: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
		_, _, n, err := s.numberFor(as, a.Number, acl.NumberSettings)
		if err != nil {
			return nil, err
		}
		e := n.E164
		const maxGreeting = 8000 * 2 * 120 // 2 minutes
		switch {
		case a.Reset:
			a.PCM = nil
		case len(a.PCM) < 1600 || len(a.PCM)%2 != 0:
			return nil, fmt.Errorf("%w: the greeting is shorter than 0.1 s: record a longer WAV file", acl.ErrInvalid)
		case len(a.PCM) > maxGreeting:
			return nil, fmt.Errorf("%w: the greeting is longer than 2 minutes: trim the WAV file", acl.ErrInvalid)
		}
		if err := s.box.SetGreeting(e, a.PCM); err != nil {
			return nil, err
		}
		s.changed(as, OpGreetingSet, "number", e, "bytes", len(a.PCM))
		if a.PCM == nil {
			return Done{e + " now plays the default greeting"}, nil
		}
		return Done{fmt.Sprintf("%s now plays a %.1f s greeting", e, float64(len(a.PCM))/16000)}, nil
	}),
	OpCalls: typed(func(ctx context.Context, s *Service, as string, a CallArgs) (any, error) {
		numbers, err := s.usableNumbers(as, a.Number)
		if err != nil {
			return nil, err
		}
		if a.Limit < 0 || a.Limit > 10000 {
			return nil, fmt.Errorf("%w: bad --limit %d: use 1 to 10000", acl.ErrInvalid, a.Limit)
		}
		return s.box.Calls(numbers, a.Limit)
	}),
	OpCallShow: typed(func(ctx context.Context, s *Service, as string, a CallArgs) (any, error) {
		snap := s.dir.Snapshot()
		actor, err := snap.Actor(as)
		if err != nil {
			return nil, err
		}
		c, err := s.box.Call(a.ID)
		if errors.Is(err, inbox.ErrNotFound) {
			return nil, fmt.Errorf("%w: no call %q: see \"partyline calls\"", acl.ErrNotFound, a.ID)
		}
		if err != nil {
			return nil, err
		}
		if err := acl.Decide(actor, acl.NumberUse, acl.Target{NumberRole: snap.MemberRole(c.Number, actor.Name)}); err != nil {
			if actor.Role == acl.RoleOwner || actor.Role == acl.RoleAdmin {
				return nil, err // managers are told to add themselves
			}
			// Indistinguishable from a missing call for others.
			return nil, fmt.Errorf("%w: no call %q: see \"partyline calls\"", acl.ErrNotFound, a.ID)
		}
		return c, nil
	}),
	OpTrunkRemove: typed(func(ctx context.Context, s *Service, as string, a TrunkArgs) (any, error) {
		if err := s.dir.RemoveTrunk(as, a.Name); err != nil {
			return nil, err
		}
		s.changed(as, OpTrunkRemove, "trunk", a.Name)
		return Done{"removed trunk " + a.Name}, nil
	}),
}

// roleOrMember reads a --role flag; left out, it is member.
func roleOrMember(name string) (acl.Role, error) {
	if name == "" {
		return acl.RoleMember, nil
	}
	return acl.ParseRole(name)
}

// typed decodes the arguments strictly (unknown fields are an error).
func typed[A any](f func(ctx context.Context, s *Service, as string, a A) (any, error)) opFunc {
	return func(ctx context.Context, s *Service, as string, raw json.RawMessage) (any, error) {
		var a A
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, fmt.Errorf("%w: bad arguments: %v", acl.ErrInvalid, err)
			}
		}
		return f(ctx, s, as, a)
	}
}

func (s *Service) memberChange(as, op string, a MemberArgs, role acl.Role, f func(as, number, user string, role acl.Role) error) (any, error) {
	if err := f(as, a.Number, a.User, role); err != nil {
		return nil, err
	}
	e, _ := acl.NormalizeE164(a.Number)
	s.changed(as, op, "number", e, "target", a.User, "role", role.String())
	return s.numberView(s.dir.Snapshot(), e), nil
}

// changed logs a committed change for operators; never a password.
func (s *Service) changed(as, op string, kv ...any) {
	actor := as
	if actor == "" {
		actor = "operator"
	}
	s.log.Info("admin", append([]any{"op", op, "user", actor}, kv...)...)
}

func userView(snap *acl.Snapshot, name string) UserView {
	u, _ := snap.User(name)
	nums := snap.NumbersOf(name)
	if nums == nil {
		nums = []string{}
	}
	return UserView{Name: u.Name, Email: u.Email, Role: u.Role.String(), Numbers: nums}
}

func planView(p acl.Plan) PlanView {
	return PlanView{Plan: p.String(), MaxUsersPerNumber: p.MaxUsersPerNumber(), RingCap: acl.RingCap}
}

func (s *Service) numberView(snap *acl.Snapshot, e164 string) NumberView {
	n, _ := snap.Number(e164)
	v := NumberView{Number: n.E164, Name: n.Name, Users: len(n.Members), MaxUsers: snap.Plan().MaxUsersPerNumber(), Members: []MemberView{}}
	for _, m := range n.Members {
		devs := s.registrations(m.User)
		v.Members = append(v.Members, MemberView{User: m.User, Role: m.Role.String(), Added: m.Added, Devices: devs,
			WouldRing: len(devs) > 0 && inFlow(n, m.User)})
	}
	return v
}

func trunkView(t acl.Trunk) TrunkView {
	return TrunkView{Name: t.Name, Address: t.Address, Allow: append([]string{}, t.Allow...)}
}

func (s *Service) registrations(user string) []Registration {
	out := []Registration{}
	for _, b := range s.loc.Lookup(user) {
		out = append(out, Registration{User: b.User, Contact: b.Contact, Source: b.Source, Transport: b.Transport, UserAgent: b.UserAgent, ExpiresAt: b.Expires.UTC()})
	}
	return out
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

// usableNumbers are the numbers whose conversations the actor may see:
// the one asked for (refused when not a member), or all of theirs.
func (s *Service) usableNumbers(as, number string) ([]string, error) {
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return nil, err
	}
	if number != "" {
		_, _, n, err := s.numberFor(as, number, acl.NumberUse)
		if err != nil {
			return nil, err
		}
		return []string{n.E164}, nil
	}
	var out []string
	for _, n := range snap.Numbers() {
		if acl.Decide(actor, acl.NumberUse, acl.Target{NumberRole: n.Role(actor.Name)}) == nil {
			out = append(out, n.E164)
		}
	}
	return out, nil
}

// voicemailFor loads a message the actor may act on with act; to others
// it looks missing.
func (s *Service) voicemailFor(as, id string, act acl.Action) (acl.Actor, inbox.Voicemail, error) {
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return actor, inbox.Voicemail{}, err
	}
	missing := fmt.Errorf("%w: no voicemail %q: see \"partyline voicemail list\"", acl.ErrNotFound, id)
	v, err := s.box.Voicemail(id)
	if errors.Is(err, inbox.ErrNotFound) {
		return actor, v, missing
	}
	if err != nil {
		return actor, v, err
	}
	role := snap.MemberRole(v.Number, actor.Name)
	if err := acl.Decide(actor, acl.NumberUse, acl.Target{NumberRole: role}); err != nil {
		if actor.Role == acl.RoleOwner || actor.Role == acl.RoleAdmin {
			return actor, v, err // managers are told to add themselves
		}
		return actor, v, missing
	}
	if err := acl.Decide(actor, act, acl.Target{NumberRole: role}); err != nil {
		return actor, v, err
	}
	return actor, v, nil
}

func actorName(a acl.Actor) string {
	if a.Operator {
		return "operator"
	}
	return a.Name
}

// voicemailChanged tells the running server (message lamps) when set.
func (s *Service) voicemailChanged(number string) {
	if s.OnVoicemailChange != nil {
		s.OnVoicemailChange(number)
	}
}

// numberFor resolves the acting user and the number (any spelling) and
// checks that the actor may take act on it.
func (s *Service) numberFor(as, number string, act acl.Action) (*acl.Snapshot, acl.Actor, acl.Number, error) {
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return snap, actor, acl.Number{}, err
	}
	e, err := acl.NormalizeE164(number)
	if err != nil {
		return snap, actor, acl.Number{}, err
	}
	n, ok := snap.Number(e)
	if !ok {
		return snap, actor, n, fmt.Errorf("%w: unknown number %s: see \"partyline number list\"", acl.ErrNotFound, e)
	}
	if err := acl.Decide(actor, act, acl.Target{NumberRole: n.Role(actor.Name)}); err != nil {
		return snap, actor, n, err
	}
	return snap, actor, n, nil
}

// contactErr maps the inbox's outcomes to the CLI's kinds.
func contactErr(err error) error {
	switch {
	case errors.Is(err, inbox.ErrExists):
		return fmt.Errorf("%w: %v", acl.ErrExists, strings.TrimPrefix(err.Error(), inbox.ErrExists.Error()+": "))
	case errors.Is(err, inbox.ErrNotFound):
		return fmt.Errorf("%w: %v", acl.ErrNotFound, strings.TrimPrefix(err.Error(), inbox.ErrNotFound.Error()+": "))
	case errors.Is(err, inbox.ErrInvalid), errors.Is(err, acl.ErrInvalid):
		msg := strings.Replace(err.Error(), inbox.ErrInvalid.Error()+": ", "", 1)
		msg = strings.Replace(msg, acl.ErrInvalid.Error()+": ", "", 1)
		return fmt.Errorf("%w: %s", acl.ErrInvalid, msg)
	}
	return err
}

// may resolves the acting user and checks a workspace-level action.
func (s *Service) may(as string, act acl.Action) (*acl.Snapshot, acl.Actor, error) {
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return snap, actor, err
	}
	return snap, actor, acl.Decide(actor, act, acl.Target{})
}
