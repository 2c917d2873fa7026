package config

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/partyline/partyline/"

// TestDependenciesPointOneWay: the layers of STYLE.md's "Dependencies
// point one way", over each package's whole dependency graph (go list
// -deps): acl, inbox, config, location and media import nothing of sip,
// media (but itself), admin, cmd or sipgo; admin nothing of cmd or sipgo;
// sip of this module only acl, inbox, location and media (and any library);
// nothing imports cmd.
func TestDependenciesPointOneWay(t *testing.T) {
	lower := []string{module + "sip", module + "media", module + "admin", module + "cmd", "github.com/emiago/sipgo"}
	rules := []struct {
		pkg    string
		never  []string // packages (and those under them) it must not depend on
		within []string // when set, the only packages of this module it may depend on
	}{
		{pkg: "acl", never: lower},
		{pkg: "inbox", never: lower},
		{pkg: "config", never: lower},
		{pkg: "location", never: lower},
		{pkg: "media", never: lower},
		{pkg: "admin", never: []string{module + "cmd", "github.com/emiago/sipgo"}},
		{pkg: "guard", within: []string{}},
		{pkg: "api", never: []string{module + "cmd", module + "sip", "github.com/emiago/sipgo"}},
		{pkg: "sip", never: []string{module + "cmd", module + "admin"}, within: []string{"acl", "inbox", "location", "media", "guard"}},
	}
	deps := moduleDeps(t)
	for _, r := range rules {
		path := module + r.pkg
		ds, ok := deps[path]
		if !ok {
			t.Errorf("package %s is not in the module: update this test", path)
			continue
		}
		for _, dep := range ds {
			if dep == path || strings.HasPrefix(dep, path+"/") {
				continue
			}
			for _, n := range r.never {
				if dep == n || strings.HasPrefix(dep, n+"/") {
					t.Errorf("%s depends on %s", r.pkg, dep)
				}
			}
			if r.within != nil && strings.HasPrefix(dep, module) && !slices.Contains(r.within, strings.TrimPrefix(dep, module)) {
				t.Errorf("%s depends on %s; of this module it may depend on %s only", r.pkg, dep, strings.Join(r.within, ", "))
			}
		}
	}
	for pkg, ds := range deps {
		if strings.HasPrefix(pkg, module+"cmd/") {
			continue
		}
		for _, dep := range ds {
			if strings.HasPrefix(dep, module+"cmd/") {
				t.Errorf("%s depends on %s: nothing imports cmd", pkg, dep)
			}
		}
	}
}

// moduleDeps maps each package of the module to every package it depends
// on, directly or not (its tests' imports aside); -e: a package another
// change has broken still lists what it imports.
func moduleDeps(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"...").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	deps := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 {
			deps[f[0]] = f[1:]
		}
	}
	return deps
}

func TestValidate(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.DataDir != DefaultDataDir || c.SIP[0] != DefaultSIP || c.LockTimeout != DefaultLockTimeout {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{SIP: []string{"nonsense"}, DataDir: "/" + strings.Repeat("x", 120)}.WithDefaults()
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "bad --sip") || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("got %v", err)
	}
}
