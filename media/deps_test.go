package media

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: media takes plain values and imports nothing of sipgo,
// sip, inbox or cmd (see STYLE.md).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/partyline/partyline/media").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/emiago/sipgo", "github.com/partyline/partyline/sip", "github.com/partyline/partyline/inbox", "github.com/partyline/partyline/cmd"} {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("media depends on %s", dep)
			}
		}
	}
}
