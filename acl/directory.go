package acl

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketMeta    = []byte("acl.meta")
	bucketUsers   = []byte("acl.users")
	bucketNumbers = []byte("acl.numbers")
	bucketTrunks  = []byte("acl.trunks")

	keyRealm = []byte("realm")
	keyPlan  = []byte("plan")
)

// ErrRealm: the requested realm differs from the one the stored password
// digests were made for.
var ErrRealm = errors.New("realm mismatch")

// Directory is the persistent directory. Writers are serialised; readers use
// Snapshot and never block.
type Directory struct {
	db  *bolt.DB
	now func() time.Time

	mu   sync.Mutex // one change at a time
	snap atomic.Pointer[Snapshot]
}

// Options for Open.
type Options struct {
	// Realm for the digest HA1 values. Empty: the stored realm, or for a new
	// workspace the host name. A realm that differs from the stored one is
	// refused (ErrRealm): every stored digest would stop matching.
	Realm string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Open loads the directory from db, creating its buckets on first use.
func Open(db *bolt.DB, opt Options) (*Directory, error) {
	d := &Directory{db: db, now: opt.Now}
	if d.now == nil {
		d.now = time.Now
	}
	s := newSnapshot()
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketUsers, bucketNumbers, bucketTrunks} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		stored := string(meta.Get(keyRealm))
		switch {
		case stored == "":
			s.realm = opt.Realm
			if s.realm == "" {
				h, err := os.Hostname()
				if err != nil || h == "" {
					h = "partyline"
				}
				s.realm = h
			}
			if err := meta.Put(keyRealm, []byte(s.realm)); err != nil {
				return err
			}
		case opt.Realm != "" && opt.Realm != stored:
			return fmt.Errorf("%w: this workspace's realm is %q and its passwords are stored as digests for it; start without --realm or with --realm %s (a new realm needs every password set again)", ErrRealm, stored, stored)
		default:
			s.realm = stored
		}
		if p := meta.Get(keyPlan); p != nil {
			if err := s.plan.UnmarshalText(p); err != nil {
				return err
			}
		}
		if err := loadAll(tx.Bucket(bucketUsers), s.users); err != nil {
			return err
		}
		if err := loadAll(tx.Bucket(bucketNumbers), s.numbers); err != nil {
			return err
		}
		if err := loadAll(tx.Bucket(bucketTrunks), s.trunks); err != nil {
			return err
		}
		for _, t := range s.trunks {
			t.compile()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.snap.Store(s)
	return d, nil
}

func loadAll[T any](b *bolt.Bucket, into map[string]*T) error {
	return b.ForEach(func(k, v []byte) error {
		var rec T
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("directory record %q: %w", k, err)
		}
		into[string(k)] = &rec
		return nil
	})
}

// Snapshot returns the directory as of the last committed change.
func (d *Directory) Snapshot() *Snapshot { return d.snap.Load() }

// change is one change in progress: the next snapshot and the keys to write.
type change struct {
	cur, next *Snapshot
	actor     Actor
	now       time.Time
	users     map[string]bool // name → written (false: deleted)
	numbers   map[string]bool
	trunks    map[string]bool
	plan      bool
}

func (c *change) putUser(u *User) { c.next.users[u.Name] = u; c.users[u.Name] = true }

func (c *change) delUser(name string) { delete(c.next.users, name); c.users[name] = false }

func (c *change) putNumber(n *Number) { c.next.numbers[n.E164] = n; c.numbers[n.E164] = true }

func (c *change) delNumber(e string) { delete(c.next.numbers, e); c.numbers[e] = false }

func (c *change) putTrunk(t *Trunk) { c.next.trunks[t.Name] = t; c.trunks[t.Name] = true }

func (c *change) delTrunk(name string) {
	delete(c.next.trunks, name)
	c.trunks[name] = false
}

// update runs fn as actor as ("" = operator) on a copy of the directory;
// when fn succeeds the changed records are written in one transaction and
// the copy is published. When fn or the write fails nothing changes.
func (d *Directory) update(as string, fn func(c *change) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.snap.Load()
	actor, err := cur.Actor(as)
	if err != nil {
		return err
	}
	c := &change{
		cur: cur, next: cur.clone(), actor: actor, now: d.now().UTC(),
		users: map[string]bool{}, numbers: map[string]bool{}, trunks: map[string]bool{},
	}
	if err := fn(c); err != nil {
		return err
	}
	if err := d.commit(c); err != nil {
		return err
	}
	d.snap.Store(c.next)
	return nil
}

// commit writes the records c changed in one transaction.
func (d *Directory) commit(c *change) error {
	err := d.db.Update(func(tx *bolt.Tx) error {
		if c.plan {
			p, _ := c.next.plan.MarshalText()
			if err := tx.Bucket(bucketMeta).Put(keyPlan, p); err != nil {
				return err
			}
		}
		if err := writeAll(tx.Bucket(bucketUsers), c.users, c.next.users); err != nil {
			return err
		}
		if err := writeAll(tx.Bucket(bucketNumbers), c.numbers, c.next.numbers); err != nil {
			return err
		}
		return writeAll(tx.Bucket(bucketTrunks), c.trunks, c.next.trunks)
	})
	if err != nil {
		return fmt.Errorf("saving the directory: %w", err)
	}
	return nil
}

func writeAll[T any](b *bolt.Bucket, dirty map[string]bool, recs map[string]*T) error {
	for k, put := range dirty {
		if !put {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
			continue
		}
		v, err := json.Marshal(recs[k])
		if err != nil {
			return err
		}
		if err := b.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

// NewUser is what AddUser needs.
type NewUser struct {
	Name     string
	Password string
	Role     Role // RoleNone means member
	Email    string
}

// AddUser creates a user.
func (d *Directory) AddUser(as string, nu NewUser) error {
	if nu.Role == RoleNone {
		nu.Role = RoleMember
	}
	if err := CheckName("user", nu.Name); err != nil {
		return err
	}
	if err := CheckEmail(nu.Email); err != nil {
		return err
	}
	if err := CheckPassword(nu.Password); err != nil {
		return err
	}
	hash := HashPassword(nu.Password) // slow: outside the lock
	return d.update(as, func(c *change) error {
		if err := Decide(c.actor, UserAdd, Target{Role: nu.Role}); err != nil {
			return err
		}
		if _, ok := c.cur.users[nu.Name]; ok {
			return fmt.Errorf("%w: user %q: pick another name, or change it with \"partyline user set-role\" / \"user set-password\"", ErrExists, nu.Name)
		}
		realm := c.cur.realm
		c.putUser(&User{
			Name: nu.Name, Email: nu.Email, Role: nu.Role, Created: c.now,
			HA1MD5: HA1MD5(nu.Name, realm, nu.Password), HA1SHA256: HA1SHA256(nu.Name, realm, nu.Password),
			Password: &hash,
		})
		return nil
	})
}

func (c *change) user(name string) (*User, error) {
	u, ok := c.cur.users[name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown user %q: see \"partyline user list\"", ErrNotFound, name)
	}
	return u, nil
}

// numberFor finds the number and checks that the actor may take act on
// it (giving newRole, where the action gives one).
func (c *change) numberFor(number string, act Action, newRole Role) (*Number, error) {
	n, err := c.number(number)
	if err != nil {
		return nil, err
	}
	if err := Decide(c.actor, act, Target{NumberRole: n.Role(c.actor.Name), NewRole: newRole}); err != nil {
		return nil, err
	}
	return n, nil
}

func (c *change) number(e164 string) (*Number, error) {
	e, err := NormalizeE164(e164)
	if err != nil {
		return nil, err
	}
	n, ok := c.next.numbers[e]
	if !ok {
		return nil, fmt.Errorf("%w: unknown number %s: see \"partyline number list\"", ErrNotFound, e)
	}
	return n, nil
}

// RemoveUser deletes a user and their memberships. A user who is the last
// owner of a number, or of the workspace, cannot be removed.
func (d *Directory) RemoveUser(as, name string) error {
	return d.update(as, func(c *change) error {
		u, err := c.user(name)
		if err != nil {
			return err
		}
		if err := Decide(c.actor, UserRemove, Target{Role: u.Role}); err != nil {
			return err
		}
		if u.Role == RoleOwner && c.cur.owners() == 1 {
			return fmt.Errorf("%w: %s is the workspace's last owner: make another user owner first (\"partyline user set-role USER owner\")", ErrLastOwner, name)
		}
		var lastOf []string
		for _, e := range c.cur.NumbersOf(name) {
			n := c.cur.numbers[e]
			if n.Role(name) == RoleOwner && n.owners() == 1 {
				lastOf = append(lastOf, e)
			}
		}
		if len(lastOf) > 0 {
			return fmt.Errorf("%w: %s is the last owner of %s: give each another owner first (\"partyline number member set-role NUMBER USER owner\")", ErrLastOwner, name, strings.Join(lastOf, ", "))
		}
		for _, e := range c.cur.NumbersOf(name) {
			n := *c.cur.numbers[e]
			n.Members = slices.DeleteFunc(slices.Clone(n.Members), func(m Member) bool { return m.User == name })
			c.putNumber(&n)
		}
		c.delUser(name)
		return nil
	})
}

// SetUserRole changes a user's workspace role.
func (d *Directory) SetUserRole(as, name string, role Role) error {
	if role == RoleNone {
		return fmt.Errorf("%w: bad role: use owner, admin or member", ErrInvalid)
	}
	return d.update(as, func(c *change) error {
		u, err := c.user(name)
		if err != nil {
			return err
		}
		if err := Decide(c.actor, UserSetRole, Target{Role: u.Role, NewRole: role}); err != nil {
			return err
		}
		if u.Role == role {
			return nil
		}
		if u.Role == RoleOwner && c.cur.owners() == 1 {
			return fmt.Errorf("%w: %s is the workspace's last owner: make another user owner first", ErrLastOwner, name)
		}
		nu := *u
		nu.Role = role
		c.putUser(&nu)
		return nil
	})
}

// SetPassword replaces a user's password digests and login hash.
func (d *Directory) SetPassword(as, name, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash := HashPassword(password) // slow: outside the lock
	return d.update(as, func(c *change) error {
		u, err := c.user(name)
		if err != nil {
			return err
		}
		if err := Decide(c.actor, UserSetPassword, Target{Role: u.Role, Self: c.actor.Name == name}); err != nil {
			return err
		}
		nu := *u
		nu.HA1MD5 = HA1MD5(name, c.cur.realm, password)
		nu.HA1SHA256 = HA1SHA256(name, c.cur.realm, password)
		nu.Password = &hash
		c.putUser(&nu)
		return nil
	})
}

// SetPlan changes the workspace plan. Moving to a plan whose user limit a
// number exceeds is refused, naming those numbers.
func (d *Directory) SetPlan(as string, p Plan) error {
	return d.update(as, func(c *change) error {
		if err := Decide(c.actor, PlanSet, Target{}); err != nil {
			return err
		}
		limit := p.MaxUsersPerNumber()
		var over []string
		for _, n := range c.cur.Numbers() {
			if len(n.Members) > limit {
				over = append(over, fmt.Sprintf("%s (%d users)", n.E164, len(n.Members)))
			}
		}
		if len(over) > 0 {
			return fmt.Errorf("%w: the %s plan allows %d users per number and %s more: remove members first (\"partyline number member remove NUMBER USER\")", ErrPlanLimit, p, limit, strings.Join(over, ", ")+map[bool]string{true: " has", false: " have"}[len(over) == 1])
		}
		c.next.plan = p
		c.plan = true
		return nil
	})
}

// AddTrunk adds a carrier trunk.
func (d *Directory) AddTrunk(as, name, address string, allow []string) error {
	if err := CheckName("trunk", name); err != nil {
		return err
	}
	if err := CheckHostPort(address); err != nil {
		return err
	}
	t := &Trunk{Name: name, Address: address, Allow: []string{}}
	for _, a := range allow {
		canon, err := ParseAllow(a)
		if err != nil {
			return err
		}
		if !slices.Contains(t.Allow, canon) {
			t.Allow = append(t.Allow, canon)
		}
	}
	t.compile()
	return d.update(as, func(c *change) error {
		if err := Decide(c.actor, TrunkAdd, Target{}); err != nil {
			return err
		}
		if _, ok := c.cur.trunks[name]; ok {
			return fmt.Errorf("%w: trunk %q: remove it first (\"partyline trunk remove %s\")", ErrExists, name, name)
		}
		c.putTrunk(t)
		return nil
	})
}

// RemoveTrunk deletes a trunk.
func (d *Directory) RemoveTrunk(as, name string) error {
	return d.update(as, func(c *change) error {
		if err := Decide(c.actor, TrunkRemove, Target{}); err != nil {
			return err
		}
		if _, ok := c.cur.trunks[name]; !ok {
			return fmt.Errorf("%w: unknown trunk %q: see \"partyline trunk list\"", ErrNotFound, name)
		}
		for _, n := range c.cur.Numbers() {
			if n.Trunk == name {
				return fmt.Errorf("%w: trunk %q carries %s's calls: give it another first (\"partyline number set-trunk %s TRUNK\")", ErrExists, name, n.E164, n.E164)
			}
		}
		c.delTrunk(name)
		return nil
	})
}

// Realm is the digest realm of the workspace.
func (d *Directory) Realm() string { return d.Snapshot().Realm() }

// UserHA1 returns the user's digest HA1 for the realm: SHA-256 when sha256
// is set, else MD5. ok is false for an unknown user.
func (d *Directory) UserHA1(user string, sha256 bool) (ha1 string, ok bool) {
	u, ok := d.Snapshot().users[user]
	if !ok {
		return "", false
	}
	if sha256 {
		return u.HA1SHA256, true
	}
	return u.HA1MD5, true
}

// TrustedTrunk names the trunk whose allow list trusts src.
func (d *Directory) TrustedTrunk(src netip.AddrPort) (string, bool) {
	t, ok := d.Snapshot().TrunkFor(src)
	return t.Name, ok
}

// SetDefaultNumber sets the number a user calls and texts out as. The user
// themself, or a workspace owner or admin, may set it; the user must be a
// member of the number.
func (d *Directory) SetDefaultNumber(as, user, number string) error {
	return d.update(as, func(c *change) error {
		u, err := c.user(user)
		if err != nil {
			return err
		}
		if err := Decide(c.actor, UserSetPassword, Target{Role: u.Role, Self: c.actor.Name == user}); err != nil {
			return fmt.Errorf("%w: %s may not set %s's default number: users set their own; owners and admins anyone's", ErrForbidden, c.actor.Name, user)
		}
		n, err := c.number(number)
		if err != nil {
			return err
		}
		if n.Role(user) == RoleNone {
			return fmt.Errorf("%w: %s is not a member of %s: add them first (\"partyline number member add %s %s\")", ErrNotFound, user, n.E164, n.E164, user)
		}
		nu := *u
		nu.DefaultNumber = n.E164
		c.putUser(&nu)
		return nil
	})
}

// OutboundNumber is the number a user calls out as: from when it is one of
// theirs, else their default number, else their first number.
func (s *Snapshot) OutboundNumber(user, from string) (string, bool) {
	if e, err := NormalizeE164(from); err == nil {
		if n, ok := s.numbers[e]; ok {
			return e, n.Role(user) != RoleNone
		}
	}
	if u, ok := s.users[user]; ok && u.DefaultNumber != "" {
		if n, ok := s.numbers[u.DefaultNumber]; ok && n.Role(user) != RoleNone {
			return n.E164, true
		}
	}
	// First by membership time.
	var best *Number
	var bestAt time.Time
	for _, n := range s.numbers {
		for _, m := range n.Members {
			if m.User == user && (best == nil || m.Added.Before(bestAt)) {
				best, bestAt = n, m.Added
			}
		}
	}
	if best == nil {
		return "", false
	}
	return best.E164, true
}

// OutboundTrunk returns the trunk of a number's outbound calls: its own, or the
// only trunk there is.
func (s *Snapshot) OutboundTrunk(number string) (Trunk, bool) {
	if n, ok := s.numbers[number]; ok && n.Trunk != "" {
		t, ok := s.trunks[n.Trunk]
		if ok {
			return *t, true
		}
	}
	if len(s.trunks) == 1 {
		for _, t := range s.trunks {
			return *t, true
		}
	}
	return Trunk{}, false
}
