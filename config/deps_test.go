package config

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesPointOneWay: acl, inbox and config import nothing of sip,
// media, cmd or sipgo (see STYLE.md).
func TestDependenciesPointOneWay(t *testing.T) {
	for _, pkg := range []string{"acl", "inbox", "config", "admin"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/partyline/partyline/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			bad := strings.Contains(dep, "emiago/sipgo") || strings.HasPrefix(dep, "github.com/partyline/partyline/cmd")
			if pkg != "admin" {
				bad = bad || strings.HasPrefix(dep, "github.com/partyline/partyline/sip") || strings.HasPrefix(dep, "github.com/partyline/partyline/media")
			}
			if bad {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
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
