package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTestDB(t testing.TB, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newDir(t testing.TB) (*Directory, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.db")
	d, err := Open(openTestDB(t, path), Options{Realm: "test.example"})
	if err != nil {
		t.Fatal(err)
	}
	return d, path
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// seed: owner olga, admin adam, members mia and max; number N with
// owner nora (member), admin nadia (member), member mo (member).
func seed(t testing.TB, d *Directory) string {
	for _, u := range []struct {
		n string
		r Role
	}{{"olga", RoleOwner}, {"adam", RoleAdmin}, {"mia", RoleMember}, {"max", RoleMember}, {"nora", RoleMember}, {"nadia", RoleMember}, {"mo", RoleMember}} {
		must(t, d.AddUser("", NewUser{Name: u.n, Password: "secret-" + u.n, Role: u.r}))
	}
	e, err := d.AddNumber("", "+1 555 123 0001", "Support")
	must(t, err)
	must(t, d.AddMember("", e, "nora", RoleOwner))
	must(t, d.AddMember("", e, "nadia", RoleAdmin))
	must(t, d.AddMember("", e, "mo", RoleMember))
	return e
}

func TestDirectoryPersistsAndHashes(t *testing.T) {
	d, path := newDir(t)
	e := seed(t, d)
	if e != "+15551230001" {
		t.Fatalf("number stored as %q", e)
	}
	u, _ := d.Snapshot().User("mia")
	if u.HA1MD5 != HA1MD5("mia", "test.example", "secret-mia") || len(u.HA1SHA256) != 64 {
		t.Fatalf("HA1 not as expected: %+v", u)
	}
	d.db.Close()
	d2, err := Open(openTestDB(t, path), Options{})
	must(t, err)
	s := d2.Snapshot()
	if s.Realm() != "test.example" || len(s.Users()) != 7 {
		t.Fatalf("reloaded realm %q users %d", s.Realm(), len(s.Users()))
	}
	n, ok := s.Number(e)
	if !ok || n.Name != "Support" || len(n.Members) != 3 || n.Members[0].User != "nora" || n.Members[0].Role != RoleOwner {
		t.Fatalf("reloaded number %+v", n)
	}
}

func TestRealmMismatchRefused(t *testing.T) {
	d, path := newDir(t)
	d.db.Close()
	_, err := Open(openTestDB(t, path), Options{Realm: "other"})
	if !errors.Is(err, ErrRealm) || !strings.Contains(err.Error(), "test.example") {
		t.Fatalf("got %v", err)
	}
}

// TestRefusedChangesNothing: every refused change leaves the snapshot and
// the file as they were.
func TestRefusedChangesNothing(t *testing.T) {
	d, _ := newDir(t)
	e := seed(t, d)
	before := d.Snapshot()
	refused := []func() error{
		func() error { return d.AddUser("adam", NewUser{Name: "o2", Password: "password1", Role: RoleOwner}) },
		func() error { return d.AddUser("mia", NewUser{Name: "m2", Password: "password1"}) },
		func() error { return d.RemoveUser("adam", "olga") },
		func() error { return d.SetUserRole("adam", "mia", RoleOwner) },
		func() error { return d.SetUserRole("mia", "max", RoleAdmin) },
		func() error { return d.SetPassword("mia", "max", "password1") },
		func() error { return d.SetPlan("adam", PlanBusiness) },
		func() error { _, err := d.AddNumber("mia", "+15550000001", ""); return err },
		func() error { return d.RemoveNumber("nora", e) },
		func() error { return d.AddTrunk("mia", "t", "127.0.0.1:5060", nil) },
		func() error { return d.AddMember("nadia", e, "mia", RoleOwner) },
		func() error { return d.AddMember("mo", e, "mia", RoleMember) },
		func() error { return d.RemoveMember("nadia", e, "mo") },
		func() error { return d.SetMemberRole("nadia", e, "mo", RoleAdmin) },
		func() error { return d.SetNumberName("mo", e, "x") },
		func() error { return d.AddMember("mia", e, "max", RoleMember) },
	}
	for i, f := range refused {
		if err := f(); !errors.Is(err, ErrForbidden) {
			t.Errorf("case %d: got %v, want ErrForbidden", i, err)
		}
		if d.Snapshot() != before {
			t.Fatalf("case %d: refused change published a new snapshot", i)
		}
	}
	// And the allowed counterparts go through.
	must(t, d.AddMember("nadia", e, "mia", RoleAdmin))
	must(t, d.RemoveMember("nora", e, "mia"))
	must(t, d.SetNumberName("nadia", e, "Sales"))
	must(t, d.SetPassword("mia", "mia", "new-password"))
	must(t, d.AddMember("adam", e, "max", RoleOwner)) // workspace admin manages as owner
}

func TestLastOwners(t *testing.T) {
	d, _ := newDir(t)
	e := seed(t, d)
	if err := d.RemoveMember("", e, "nora"); !errors.Is(err, ErrLastOwner) {
		t.Fatalf("removing the last number owner: %v", err)
	}
	if err := d.SetMemberRole("nora", e, "nora", RoleAdmin); !errors.Is(err, ErrLastOwner) {
		t.Fatalf("demoting the last number owner: %v", err)
	}
	if err := d.RemoveUser("", "nora"); !errors.Is(err, ErrLastOwner) || !strings.Contains(err.Error(), e) {
		t.Fatalf("removing the last owner's account: %v", err)
	}
	if err := d.RemoveUser("olga", "olga"); !errors.Is(err, ErrLastOwner) {
		t.Fatalf("removing the last workspace owner: %v", err)
	}
	if err := d.SetUserRole("", "olga", RoleMember); !errors.Is(err, ErrLastOwner) {
		t.Fatalf("demoting the last workspace owner: %v", err)
	}
	must(t, d.SetMemberRole("nora", e, "mo", RoleOwner))
	must(t, d.SetMemberRole("nora", e, "nora", RoleMember))
	must(t, d.RemoveMember("mo", e, "nora"))
	must(t, d.RemoveUser("", "nora"))
	if got := d.Snapshot().NumbersOf("nora"); len(got) != 0 {
		t.Fatalf("removed user still a member of %v", got)
	}
}

func TestPlanLimits(t *testing.T) {
	d, _ := newDir(t)
	e, err := d.AddNumber("", "+15551230001", "")
	must(t, err)
	for i := 0; i < 11; i++ {
		must(t, d.AddUser("", NewUser{Name: fmt.Sprintf("u%d", i), Password: "password1"}))
	}
	for i := 0; i < 10; i++ {
		must(t, d.AddMember("", e, fmt.Sprintf("u%d", i), RoleMember))
	}
	err = d.AddMember("", e, "u10", RoleMember)
	if !errors.Is(err, ErrPlanLimit) {
		t.Fatalf("11th member on starter: %v", err)
	}
	for _, want := range []string{"10 users", "starter", "partyline plan set business", "number member remove"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("limit message %q lacks %q", err, want)
		}
	}
	must(t, d.SetPlan("", PlanBusiness))
	must(t, d.AddMember("", e, "u10", RoleMember))
	err = d.SetPlan("", PlanStarter)
	if !errors.Is(err, ErrPlanLimit) || !strings.Contains(err.Error(), e+" (11 users)") {
		t.Fatalf("downgrade with 11 members: %v", err)
	}
	if d.Snapshot().Plan() != PlanBusiness {
		t.Fatal("refused downgrade changed the plan")
	}
}

func TestBadInput(t *testing.T) {
	d, _ := newDir(t)
	e := seed(t, d)
	cases := []struct {
		err  error
		want error
	}{
		{d.AddUser("", NewUser{Name: "Bad Name", Password: "password1"}), ErrInvalid},
		{d.AddUser("", NewUser{Name: "mia", Password: "password1"}), ErrExists},
		{d.AddUser("", NewUser{Name: "ok", Password: "short"}), ErrInvalid},
		{d.AddUser("", NewUser{Name: "ok", Password: "password1", Email: "not an email"}), ErrInvalid},
		{d.AddUser("ghost", NewUser{Name: "ok", Password: "password1"}), ErrNotFound},
		{func() error { _, err := d.AddNumber("", "555", ""); return err }(), ErrInvalid},
		{func() error { _, err := d.AddNumber("", "15551230001", ""); return err }(), ErrExists},
		{d.AddMember("", e, "ghost", RoleMember), ErrNotFound},
		{d.AddMember("", e, "mo", RoleMember), ErrExists},
		{d.AddMember("", "+15559999999", "mo", RoleMember), ErrNotFound},
		{d.RemoveMember("", e, "mia"), ErrNotFound},
		{d.RemoveUser("", "ghost"), ErrNotFound},
		{d.AddTrunk("", "t1", "nohost", nil), ErrInvalid},
		{d.AddTrunk("", "t1", "1.2.3.4:99999", nil), ErrInvalid},
		{d.AddTrunk("", "t1", "1.2.3.4:5060", []string{"1.2.3.4/99"}), ErrInvalid},
		{d.RemoveTrunk("", "none"), ErrNotFound},
	}
	for i, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("case %d: got %v, want %v", i, c.err, c.want)
		}
	}
}

func TestTrunkMatching(t *testing.T) {
	d, _ := newDir(t)
	must(t, d.AddTrunk("", "carrier", "sip.carrier.example:5060", []string{"192.0.2.0/24", "198.51.100.7", "203.0.113.5:5060", "[2001:db8::1]:5080"}))
	must(t, d.AddTrunk("", "narrow", "192.0.2.9:5060", []string{"192.0.2.9:5060"}))
	s := d.Snapshot()
	cases := map[string]string{
		"192.0.2.1:5060":          "carrier",
		"192.0.2.9:5060":          "narrow", // exact IP:PORT wins over the /24
		"192.0.2.9:5070":          "carrier",
		"198.51.100.7:1234":       "carrier",
		"[::ffff:198.51.100.7]:9": "carrier",
		"203.0.113.5:5060":        "carrier",
		"203.0.113.5:5061":        "", // same host, other port: a phone, not the carrier
		"[2001:db8::1]:5080":      "carrier",
		"[2001:db8::1]:5081":      "",
		"10.0.0.1:5060":           "",
	}
	for src, want := range cases {
		tr, ok := s.TrunkFor(netip.MustParseAddrPort(src))
		if got := map[bool]string{true: tr.Name}[ok]; got != want {
			t.Errorf("TrunkFor(%s) = %q, want %q", src, got, want)
		}
	}
	if err := d.AddTrunk("", "carrier", "x.example:5060", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate trunk: %v", err)
	}
}

func TestWhoRings(t *testing.T) {
	d, _ := newDir(t)
	must(t, d.SetPlan("", PlanBusiness))
	e, _ := d.AddNumber("", "+15551230001", "")
	for i := 0; i < 25; i++ {
		name := fmt.Sprintf("u%02d", i)
		must(t, d.AddUser("", NewUser{Name: name, Password: "password1"}))
		must(t, d.AddMember("", e, name, RoleMember))
	}
	devices := func(u string) []string {
		if u == "u03" || u == "u17" {
			return nil
		}
		return []string{u + "-desk", u + "-soft"}
	}
	plan, ok := WhoRings(d.Snapshot(), e, devices)
	if !ok {
		t.Fatal("number not found")
	}
	if got := fmt.Sprint(plan.Skipped); got != "[u03 u17]" {
		t.Fatalf("skipped %s", got)
	}
	if len(plan.Batches) != 3 || len(plan.Batches[0]) != 10 || len(plan.Batches[1]) != 10 || len(plan.Batches[2]) != 3 {
		t.Fatalf("batches %d", len(plan.Batches))
	}
	if plan.Batches[0][3].User != "u04" || len(plan.Batches[0][3].Devices) != 2 || plan.Batches[2][2].User != "u24" {
		t.Fatalf("order wrong: %+v", plan.Batches)
	}
	if _, ok := WhoRings(d.Snapshot(), "+19999999999", devices); ok {
		t.Fatal("unknown number rang")
	}
}

// BenchmarkWhoRings: 100 members with 5 registered devices each.
func BenchmarkWhoRings(b *testing.B) {
	d, _ := newDir(b)
	must(b, d.SetPlan("", PlanBusiness))
	e, _ := d.AddNumber("", "+15551230001", "")
	loc := map[string][]netip.AddrPort{}
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("user%03d", i)
		must(b, d.AddUser("", NewUser{Name: name, Password: "password1"}))
		must(b, d.AddMember("", e, name, RoleMember))
		for j := 0; j < 5; j++ {
			loc[name] = append(loc[name], netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i), byte(j)}), 5060))
		}
	}
	devices := func(u string) []netip.AddrPort { return loc[u] }
	s := d.Snapshot()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		plan, _ := WhoRings(s, e, devices)
		if len(plan.Batches) != 10 {
			b.Fatal("wrong plan")
		}
	}
}

func TestCustomFlow(t *testing.T) {
	d, _ := newDir(t)
	e := seed(t, d) // nora (owner), nadia (admin), mo (member)
	st, err := ParseStep("mo,nora:15")
	must(t, err)
	must(t, d.SetFlow("nadia", e, []Step{st, {Users: []string{"nadia"}, Seconds: 30}}, ThenHangup))
	devices := func(u string) []string {
		if u == "nora" {
			return nil
		}
		return []string{u + "-phone"}
	}
	plan, _ := WhoRings(d.Snapshot(), e, devices)
	if !plan.Custom || plan.Then != ThenHangup || len(plan.Batches) != 2 || plan.Batches[0][0].User != "mo" ||
		len(plan.Batches[0]) != 1 || plan.Seconds[0] != 15 || plan.Seconds[1] != 30 || fmt.Sprint(plan.Skipped) != "[nora]" {
		t.Fatalf("plan %+v", plan)
	}
	// A member who leaves drops out of the flow.
	must(t, d.RemoveMember("nora", e, "mo"))
	plan, _ = WhoRings(d.Snapshot(), e, devices)
	if len(plan.Batches) != 1 || plan.Batches[0][0].User != "nadia" {
		t.Fatalf("after removal %+v", plan)
	}
	var eleven []string
	for i := 0; i < 11; i++ {
		eleven = append(eleven, "nora")
	}
	if err := d.SetFlow("", e, []Step{{Users: eleven, Seconds: 20}}, ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "at most 10") {
		t.Fatalf("11 in a step: %v", err)
	}
	if err := d.SetFlow("mo", e, nil, ""); err == nil {
		t.Fatal("a non-member changed the flow")
	}
	if _, err := ParseStep("a,b:2"); !errors.Is(err, ErrInvalid) {
		t.Fatal("2 s ring time accepted")
	}
	must(t, d.SetFlow("nora", e, nil, ""))
	if plan, _ = WhoRings(d.Snapshot(), e, devices); plan.Custom {
		t.Fatal("--default kept the custom flow")
	}
}

func TestOutboundNumberAndTrunk(t *testing.T) {
	d, _ := newDir(t)
	e := seed(t, d)
	e2, _ := d.AddNumber("", "+15551230002", "")
	must(t, d.AddMember("", e2, "mo", RoleMember))
	s := d.Snapshot()
	if n, ok := s.OutboundNumber("mo", "sip-user-part"); !ok || n != e {
		t.Fatalf("first number: %s %v", n, ok)
	}
	if n, ok := s.OutboundNumber("mo", "+1 555 123 0002"); !ok || n != e2 {
		t.Fatalf("from as number: %s %v", n, ok)
	}
	if _, ok := s.OutboundNumber("nora", "+15551230002"); ok {
		t.Fatal("calling out as a number one is not a member of")
	}
	must(t, d.SetDefaultNumber("mo", "mo", e2))
	if n, _ := d.Snapshot().OutboundNumber("mo", "mo"); n != e2 {
		t.Fatalf("default number: %s", n)
	}
	if err := d.SetDefaultNumber("mo", "nora", e); !errors.Is(err, ErrForbidden) {
		t.Fatalf("setting another's default: %v", err)
	}
	if _, ok := d.Snapshot().OutboundTrunk(e); ok {
		t.Fatal("no trunk yet")
	}
	must(t, d.AddTrunk("", "a", "192.0.2.1:5060", nil))
	if tr, ok := d.Snapshot().OutboundTrunk(e); !ok || tr.Name != "a" {
		t.Fatal("the only trunk")
	}
	must(t, d.AddTrunk("", "b", "192.0.2.2:5060", nil))
	if _, ok := d.Snapshot().OutboundTrunk(e); ok {
		t.Fatal("two trunks and none chosen")
	}
	must(t, d.SetNumberTrunk("nadia", e, "b"))
	if tr, _ := d.Snapshot().OutboundTrunk(e); tr.Name != "b" {
		t.Fatal("chosen trunk")
	}
	if err := d.RemoveTrunk("", "b"); !errors.Is(err, ErrExists) {
		t.Fatalf("removing a trunk in use: %v", err)
	}
}
