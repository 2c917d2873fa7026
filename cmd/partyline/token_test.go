package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partyline/partyline/admin"
)

// TestCLITokens: token create prints the secret once, the data file keeps
// only its hash, list shows whose tokens the actor may manage, revoke ends
// it; the rules are those of set-password.
func TestCLITokens(t *testing.T) {
	dir := seedDir(t)
	out := ok(t, dir, "token", "create", "mia", "--name", "crm")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "plt_") || !strings.Contains(lines[0], "shown only now") {
		t.Fatalf("token create printed %q", out)
	}
	secret := lines[1]
	db, err := os.ReadFile(filepath.Join(dir, "partyline.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(db), secret) {
		t.Fatal("the data file holds the token's secret")
	}
	var created admin.TokenCreated
	if err := json.Unmarshal([]byte(ok(t, dir, "-o", "json", "--as", "adam", "token", "create", "max", "--name", "script")), &created); err != nil || created.User != "max" || !strings.HasPrefix(created.Token, "plt_") {
		t.Fatalf("json create: %+v %v", created, err)
	}
	if r := cli(t, dir, "--as", "mia", "token", "create", "max", "--name", "x"); r.code != 1 || !strings.HasPrefix(r.err, "partyline: refused: ") {
		t.Fatalf("mia makes max a token: %s", r)
	}
	if r := cli(t, dir, "--as", "adam", "token", "create", "olga", "--name", "x"); r.code != 1 || !strings.HasPrefix(r.err, "partyline: refused: ") {
		t.Fatalf("an admin makes an owner a token: %s", r)
	}
	if r := cli(t, dir, "token", "create", "mia", "--name", "crm"); r.code != 1 || !strings.Contains(r.err, "already exists") {
		t.Fatalf("same name twice: %s", r)
	}
	if r := cli(t, dir, "token", "create", "mia"); r.code != 2 {
		t.Fatalf("no --name: %s", r)
	}
	list := func(as string, args ...string) []admin.TokenView {
		t.Helper()
		var v []admin.TokenView
		a := append([]string{"-o", "json", "token", "list"}, args...)
		if as != "" {
			a = append([]string{"--as", as}, a...)
		}
		if err := json.Unmarshal([]byte(ok(t, dir, a...)), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := list(""); len(v) != 2 || v[0].User != "max" || v[1].User != "mia" {
		t.Fatalf("operator's list: %+v", v)
	}
	if v := list("mia"); len(v) != 1 || v[0].Name != "crm" {
		t.Fatalf("mia's list: %+v", v)
	}
	if v := list("", "--user", "max"); len(v) != 1 || v[0].ID != created.ID {
		t.Fatalf("--user max: %+v", v)
	}
	if table := ok(t, dir, "token", "list"); strings.Contains(table, "plt_") || !strings.Contains(table, "ID") {
		t.Fatalf("table list: %s", table)
	}
	if r := cli(t, dir, "--as", "mia", "token", "revoke", created.ID); r.code != 1 || !strings.HasPrefix(r.err, "partyline: refused: ") {
		t.Fatalf("mia revokes max's token: %s", r)
	}
	if out := ok(t, dir, "--as", "max", "token", "revoke", created.ID); !strings.Contains(out, "revoked token "+created.ID) {
		t.Fatalf("revoke: %s", out)
	}
	if r := cli(t, dir, "token", "revoke", created.ID); r.code != 1 || !strings.Contains(r.err, "no token") {
		t.Fatalf("revoked twice: %s", r)
	}
}
