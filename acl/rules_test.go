package acl

import (
	"errors"
	"strings"
	"testing"
)

var wsRoles = []Role{RoleOwner, RoleAdmin, RoleMember}

func letter(r Role) string {
	switch r {
	case RoleOwner:
		return "O"
	case RoleAdmin:
		return "A"
	case RoleMember:
		return "M"
	}
	return "-"
}

// TestDecideWorkspace covers every workspace role against every workspace
// action and target role. allowed lists the actor roles that may.
func TestDecideWorkspace(t *testing.T) {
	O, A, M := RoleOwner, RoleAdmin, RoleMember
	cases := []struct {
		act     Action
		t       Target
		allowed string
	}{
		{UserAdd, Target{Role: O}, "O"},
		{UserAdd, Target{Role: A}, "OA"},
		{UserAdd, Target{Role: M}, "OA"},
		{UserRemove, Target{Role: O}, "O"},
		{UserRemove, Target{Role: A}, "OA"},
		{UserRemove, Target{Role: M}, "OA"},
		{UserSetRole, Target{Role: O, NewRole: O}, "O"},
		{UserSetRole, Target{Role: O, NewRole: A}, "O"},
		{UserSetRole, Target{Role: O, NewRole: M}, "O"},
		{UserSetRole, Target{Role: A, NewRole: O}, "O"},
		{UserSetRole, Target{Role: A, NewRole: A}, "OA"},
		{UserSetRole, Target{Role: A, NewRole: M}, "OA"},
		{UserSetRole, Target{Role: M, NewRole: O}, "O"},
		{UserSetRole, Target{Role: M, NewRole: A}, "OA"},
		{UserSetRole, Target{Role: M, NewRole: M}, "OA"},
		{UserSetPassword, Target{Role: O}, "O"},
		{UserSetPassword, Target{Role: A}, "OA"},
		{UserSetPassword, Target{Role: M}, "OA"},
		{UserSetPassword, Target{Role: O, Self: true}, "OAM"},
		{UserSetPassword, Target{Role: A, Self: true}, "OAM"},
		{UserSetPassword, Target{Role: M, Self: true}, "OAM"},
		{UserList, Target{}, "OAM"},
		{PlanShow, Target{}, "OAM"},
		{PlanSet, Target{}, "O"},
		{NumberAdd, Target{}, "OA"},
		{NumberRemove, Target{}, "OA"},
		{TrunkAdd, Target{}, "OA"},
		{TrunkRemove, Target{}, "OA"},
		{TrunkList, Target{}, "OA"},
	}
	for _, c := range cases {
		for _, r := range wsRoles {
			want := strings.Contains(c.allowed, letter(r))
			err := Decide(Actor{Name: "x", Role: r}, c.act, c.t)
			if got := err == nil; got != want {
				t.Errorf("%s as workspace %s on %+v: allowed=%v, want %v (err %v)", c.act, r, c.t, got, want, err)
			}
			if err != nil && !errors.Is(err, ErrForbidden) {
				t.Errorf("%s as %s: error %v does not wrap ErrForbidden", c.act, r, err)
			}
		}
		if err := Decide(Operator, c.act, c.t); err != nil {
			t.Errorf("%s as operator: %v", c.act, err)
		}
	}
}

// TestDecideNumber covers every pair (workspace role, number role) against
// every per-number action. allowed lists the pairs that may, as
// workspace-letter + number-letter ("-" for not a member).
func TestDecideNumber(t *testing.T) {
	O, A, M := RoleOwner, RoleAdmin, RoleMember
	const managers = "O- OM OA OO A- AM AA AO "
	cases := []struct {
		act     Action
		newRole Role
		allowed string
	}{
		{MemberAdd, M, managers + "MA MO"},
		{MemberAdd, A, managers + "MA MO"},
		{MemberAdd, O, managers + "MO"},
		{MemberRemove, RoleNone, managers + "MO"},
		{MemberSetRole, O, managers + "MO"},
		{MemberSetRole, A, managers + "MO"},
		{MemberSetRole, M, managers + "MO"},
		{NumberSettings, RoleNone, managers + "MA MO"},
		{NumberView, RoleNone, managers + "MM MA MO"},
		{NumberUse, RoleNone, "OM OA OO AM AA AO MM MA MO"},
	}
	numRoles := []Role{RoleNone, O, A, M}
	for _, c := range cases {
		for _, wr := range wsRoles {
			for _, nr := range numRoles {
				pair := letter(wr) + letter(nr)
				want := strings.Contains(" "+c.allowed+" ", " "+pair+" ")
				err := Decide(Actor{Name: "x", Role: wr}, c.act, Target{NumberRole: nr, NewRole: c.newRole})
				if got := err == nil; got != want {
					t.Errorf("%s (new role %s) as %s: allowed=%v, want %v (err %v)", c.act, c.newRole, pair, got, want, err)
				}
			}
		}
		if err := Decide(Operator, c.act, Target{NewRole: c.newRole}); err != nil {
			t.Errorf("%s as operator: %v", c.act, err)
		}
	}
}

func TestUseRefusalTellsManagerToJoin(t *testing.T) {
	err := Decide(Actor{Name: "ann", Role: RoleAdmin}, NumberUse, Target{})
	if err == nil || !strings.Contains(err.Error(), "number member add NUMBER ann") {
		t.Fatalf("got %v, want a hint to add themselves", err)
	}
}

func TestNormalizeE164(t *testing.T) {
	good := map[string]string{
		"+15551230001":      "+15551230001",
		"15551230001":       "+15551230001",
		"+1 555-123-0001":   "+15551230001",
		"+1 (555) 123.0001": "+15551230001",
		" +4930123456 ":     "+4930123456",
		"12345678":          "+12345678",
		"123456789012345":   "+123456789012345",
	}
	for in, want := range good {
		got, err := NormalizeE164(in)
		if err != nil || got != want {
			t.Errorf("NormalizeE164(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "+", "1234567", "1234567890123456", "+0123456789", "+1555abc0001", "++15551230001", "1+5551230001", "+1555123\n0001"} {
		if got, err := NormalizeE164(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("NormalizeE164(%q) = %q, %v; want ErrInvalid", in, got, err)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, s := range []string{"alice", "a", "bob.smith", "x_1-2", "9lives"} {
		if err := CheckName("user", s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "Alice", "al ice", ".alice", "-x", "a@b", "é", strings.Repeat("a", 65)} {
		if err := CheckName("user", s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: got %v, want ErrInvalid", s, err)
		}
	}
}

func TestParseRoleAndPlan(t *testing.T) {
	if r, err := ParseRole("Admin"); err != nil || r != RoleAdmin {
		t.Fatalf("ParseRole(Admin) = %v, %v", r, err)
	}
	if _, err := ParseRole("boss"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "owner, admin or member") {
		t.Fatalf("ParseRole(boss) = %v", err)
	}
	if p, err := ParsePlan("business"); err != nil || p != PlanBusiness || p.MaxUsersPerNumber() != 100 {
		t.Fatalf("ParsePlan(business) = %v, %v", p, err)
	}
	if PlanStarter.MaxUsersPerNumber() != 10 || RingCap != 10 {
		t.Fatal("starter allows 10 users per number and 10 ring at once")
	}
}
