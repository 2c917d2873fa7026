package acl

import (
	"encoding/json"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestPasswordHashOnAddAndSet(t *testing.T) {
	d, path := newDir(t)
	must(t, d.AddUser("", NewUser{Name: "mia", Password: "first-pass"}))
	u, _ := d.Snapshot().User("mia")
	if u.Password == nil || u.Password.Algo != "argon2id" || len(u.Password.Salt) != argonSaltLen || u.Password.Memory != argonMemory {
		t.Fatalf("no argon2id hash after user add: %+v", u.Password)
	}
	if !d.VerifyPassword("mia", "first-pass") || d.VerifyPassword("mia", "wrong-pass") || d.VerifyPassword("ghost", "first-pass") {
		t.Fatal("VerifyPassword after add")
	}
	stamp := u.CredentialStamp()
	must(t, d.SetPassword("", "mia", "second-pass"))
	u2, _ := d.Snapshot().User("mia")
	if d.VerifyPassword("mia", "first-pass") || !d.VerifyPassword("mia", "second-pass") {
		t.Fatal("VerifyPassword after set-password")
	}
	if u2.CredentialStamp() == stamp {
		t.Fatal("the credential stamp did not change with the password")
	}
	// The same password again still makes a new stamp (a new salt).
	must(t, d.SetPassword("", "mia", "second-pass"))
	u3, _ := d.Snapshot().User("mia")
	if u3.CredentialStamp() == u2.CredentialStamp() {
		t.Fatal("setting the same password kept the stamp")
	}
	// The hash is persisted, and never the password.
	raw := rawUser(t, path, d, "mia")
	if strings.Contains(raw, "second-pass") || !strings.Contains(raw, `"algo":"argon2id"`) {
		t.Fatalf("stored user record: %s", raw)
	}
}

// A user stored before argon2id hashes were kept logs in against the HA1
// once; that login stores the hash.
func TestPasswordLegacyUserUpgrades(t *testing.T) {
	d, path := newDir(t)
	must(t, d.AddUser("", NewUser{Name: "old", Password: "legacy-pass"}))
	// Make the record look like one written before this change.
	d.db.Close()
	db := openTestDB(t, path)
	must(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		var u User
		must(t, json.Unmarshal(b.Get([]byte("old")), &u))
		u.Password = nil
		v, _ := json.Marshal(u)
		return b.Put([]byte("old"), v)
	}))
	d, err := Open(db, Options{})
	must(t, err)
	if u, _ := d.Snapshot().User("old"); u.Password != nil {
		t.Fatal("legacy record has a hash")
	}
	if d.VerifyPassword("old", "wrong-pass") {
		t.Fatal("wrong password accepted for a legacy user")
	}
	if u, _ := d.Snapshot().User("old"); u.Password != nil {
		t.Fatal("a failed login stored a hash")
	}
	if !d.VerifyPassword("old", "legacy-pass") {
		t.Fatal("legacy user cannot log in with the HA1 fallback")
	}
	u, _ := d.Snapshot().User("old")
	if u.Password == nil || !u.Password.Verify("legacy-pass") {
		t.Fatal("the login did not store an argon2id hash")
	}
	if !strings.Contains(rawUser(t, path, d, "old"), `"algo":"argon2id"`) {
		t.Fatal("the upgraded hash was not written")
	}
	if !d.VerifyPassword("old", "legacy-pass") {
		t.Fatal("login after the upgrade")
	}
}

func TestPasswordHashVerifyRejectsBadRecords(t *testing.T) {
	h := HashPassword("some-pass")
	for _, bad := range []PasswordHash{{}, {Algo: "argon2i", Time: h.Time, Memory: h.Memory, Threads: h.Threads, Salt: h.Salt, Hash: h.Hash}} {
		if bad.Verify("some-pass") {
			t.Errorf("%+v verified", bad)
		}
	}
	if !h.Verify("some-pass") || h.Verify("some-pasS") {
		t.Fatal("Verify")
	}
}

func rawUser(t *testing.T, _ string, d *Directory, name string) string {
	t.Helper()
	var raw string
	must(t, d.db.View(func(tx *bolt.Tx) error {
		raw = string(tx.Bucket(bucketUsers).Get([]byte(name)))
		return nil
	}))
	return raw
}
