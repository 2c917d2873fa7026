package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/partyline/partyline/admin"
)

// binary is the partyline built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "partyline-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "partyline")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building partyline: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	out, err string
	code     int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
}

// cli runs the built binary on data directory dir.
func cli(t testing.TB, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--data", dir}, args...)...)
	cmd.Env = append(os.Environ(), "PARTYLINE_DATA=")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running partyline: %v", err)
	}
	return result{so.String(), se.String(), code}
}

// ok runs a command that must succeed.
func ok(t testing.TB, dir string, args ...string) string {
	t.Helper()
	r := cli(t, dir, args...)
	if r.code != 0 {
		t.Fatalf("partyline %s: %s", strings.Join(args, " "), r)
	}
	return r.out
}

// server is a running "partyline serve".
type server struct {
	cmd    *exec.Cmd
	stdout string // file the server's stdout goes to
	mu     sync.Mutex
	log    []string      // stderr lines so far
	more   chan struct{} // a line arrived or the process exited
	exited chan struct{} // closed when the process has exited
	err    error         // exit error, once exited
}

// startServer runs serve on dir and waits for its ready line.
func startServer(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--data", dir, "serve", "--sip", "127.0.0.1:0"}, args...)...)
	s := &server{cmd: cmd, stdout: filepath.Join(t.TempDir(), "stdout"), more: make(chan struct{}, 1), exited: make(chan struct{})}
	f, err := os.Create(s.stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout = f // a file: the process writes it directly, no copying goroutine
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log = append(s.log, sc.Text())
			s.mu.Unlock()
			s.poke()
		}
		s.err = cmd.Wait()
		close(s.exited)
		s.poke()
	}()
	t.Cleanup(func() { s.stop(syscall.SIGKILL) })
	s.await(t, `msg="partyline ready"`)
	return s
}

func (s *server) poke() {
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// output is what the server printed on stdout so far.
func (s *server) output(t *testing.T) string {
	b, err := os.ReadFile(s.stdout)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logText is everything the server logged so far.
func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.log, "\n")
}

// await waits until a log line contains want.
func (s *server) await(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		s.mu.Lock()
		for _, l := range s.log {
			if strings.Contains(l, want) {
				s.mu.Unlock()
				return l
			}
		}
		s.mu.Unlock()
		select {
		case <-s.exited:
			if !strings.Contains(s.logText(), want) {
				t.Fatalf("server exited (%v) before logging %q:\n%s", s.err, want, s.logText())
			}
		case <-s.more:
		case <-deadline:
			t.Fatalf("server did not log %q within 15 s:\n%s", want, s.logText())
		}
	}
}

// stop signals the server and waits for it to exit; it returns the exit error.
func (s *server) stop(sig syscall.Signal) error {
	select {
	case <-s.exited:
		return s.err
	default:
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	return s.err
}

// seedDir builds the workspace the matrix runs on:
// workspace owners olga and otto, admins adam and ada, members mia, max,
// nora, nadia, mo; number +15551230001 with nora (owner), nadia (admin),
// mo (member); trunk carrier.
func seedDir(t *testing.T) string {
	dir := t.TempDir()
	for _, u := range [][2]string{{"olga", "owner"}, {"otto", "owner"}, {"adam", "admin"}, {"ada", "admin"},
		{"mia", "member"}, {"max", "member"}, {"nora", "member"}, {"nadia", "member"}, {"mo", "member"}} {
		ok(t, dir, "user", "add", u[0], "--password", "secret-"+u[0], "--role", u[1])
	}
	ok(t, dir, "number", "add", "+1 555 123 0001", "--name", "Support")
	ok(t, dir, "number", "member", "add", "15551230001", "nora", "--role", "owner")
	ok(t, dir, "number", "member", "add", "15551230001", "nadia", "--role", "admin")
	ok(t, dir, "number", "member", "add", "15551230001", "mo")
	ok(t, dir, "trunk", "add", "carrier", "--address", "192.0.2.1:5060", "--allow", "192.0.2.0/24")
	return dir
}

func copyDir(t *testing.T, src string) string {
	dst := t.TempDir()
	b, err := os.ReadFile(filepath.Join(src, "partyline.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "partyline.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestCLIMatrix runs every action as every kind of actor through the CLI,
// each on a fresh copy of the seeded workspace. allowed lists the actors
// that succeed; the others must exit 1 with a "refused" line and change
// nothing.
func TestCLIMatrix(t *testing.T) {
	seeded := seedDir(t)
	const N = "+15551230001"
	ws := []string{"olga", "adam", "mia"}                 // workspace owner, admin, member
	num := []string{"nora", "nadia", "mo", "mia", "adam"} // number owner, admin, member; non-member; workspace admin
	cases := []struct {
		args    []string
		actors  []string
		allowed string
	}{
		{[]string{"user", "add", "neo", "--password", "password1", "--role", "owner"}, ws, "olga"},
		{[]string{"user", "add", "neo", "--password", "password1", "--role", "admin"}, ws, "olga adam"},
		{[]string{"user", "add", "neo", "--password", "password1"}, ws, "olga adam"},
		{[]string{"user", "remove", "otto"}, ws, "olga"},
		{[]string{"user", "remove", "ada"}, ws, "olga adam"},
		{[]string{"user", "remove", "max"}, ws, "olga adam"},
		{[]string{"user", "set-role", "max", "owner"}, ws, "olga"},
		{[]string{"user", "set-role", "max", "admin"}, ws, "olga adam"},
		{[]string{"user", "set-role", "ada", "member"}, ws, "olga adam"},
		{[]string{"user", "set-role", "ada", "owner"}, ws, "olga"},
		{[]string{"user", "set-role", "otto", "admin"}, ws, "olga"},
		{[]string{"user", "set-password", "otto", "--password", "password2"}, ws, "olga"},
		{[]string{"user", "set-password", "max", "--password", "password2"}, ws, "olga adam"},
		{[]string{"user", "set-password", "mia", "--password", "password2"}, ws, "olga adam mia"},
		{[]string{"user", "list"}, ws, "olga adam mia"},
		{[]string{"plan", "show"}, ws, "olga adam mia"},
		{[]string{"plan", "set", "business"}, ws, "olga"},
		{[]string{"number", "add", "+15559990000"}, ws, "olga adam"},
		{[]string{"number", "remove", N}, append(ws, "nora"), "olga adam"},
		{[]string{"trunk", "add", "t2", "--address", "198.51.100.1:5060"}, ws, "olga adam"},
		{[]string{"trunk", "remove", "carrier"}, ws, "olga adam"},
		{[]string{"trunk", "list"}, ws, "olga adam"},
		{[]string{"number", "member", "add", N, "max"}, num, "nora nadia adam"},
		{[]string{"number", "member", "add", N, "max", "--role", "admin"}, num, "nora nadia adam"},
		{[]string{"number", "member", "add", N, "max", "--role", "owner"}, num, "nora adam"},
		{[]string{"number", "member", "remove", N, "mo"}, num, "nora adam"},
		{[]string{"number", "member", "remove", N, "nadia"}, num, "nora adam"},
		{[]string{"number", "member", "set-role", N, "mo", "admin"}, num, "nora adam"},
		{[]string{"number", "member", "set-role", N, "mo", "owner"}, num, "nora adam"},
		{[]string{"number", "member", "set-role", N, "nadia", "member"}, num, "nora adam"},
		{[]string{"number", "set", N, "--name", "Sales"}, num, "nora nadia adam"},
		{[]string{"number", "show", N}, num, "nora nadia mo adam"},
	}
	before := ok(t, seeded, "-o", "json", "number", "show", N) + ok(t, seeded, "-o", "json", "user", "list") + ok(t, seeded, "-o", "json", "plan", "show")
	for _, c := range cases {
		for _, actor := range c.actors {
			want := strings.Contains(" "+c.allowed+" ", " "+actor+" ")
			dir := copyDir(t, seeded)
			r := cli(t, dir, append([]string{"--as", actor}, c.args...)...)
			name := "--as " + actor + " " + strings.Join(c.args, " ")
			switch {
			case want && r.code != 0:
				t.Errorf("%s: want success, got %s", name, r)
			case !want && (r.code != 1 || !strings.HasPrefix(r.err, "partyline: refused: ") || strings.Count(r.err, "\n") != 1):
				t.Errorf("%s: want exit 1 with one refused line, got %s", name, r)
			case !want:
				after := ok(t, dir, "-o", "json", "number", "show", N) + ok(t, dir, "-o", "json", "user", "list") + ok(t, dir, "-o", "json", "plan", "show")
				if after != before {
					t.Errorf("%s: refused, but the workspace changed", name)
				}
			}
		}
	}
}

func TestCLIPlanLimits(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, "number", "add", "+15551230001")
	ok(t, dir, "number", "add", "+15551230002")
	for i := 0; i < 11; i++ {
		u := fmt.Sprintf("u%02d", i)
		ok(t, dir, "user", "add", u, "--password", "password1")
		if i < 10 {
			ok(t, dir, "number", "member", "add", "+15551230001", u)
		}
	}
	r := cli(t, dir, "number", "member", "add", "+15551230001", "u10")
	if r.code != 1 {
		t.Fatalf("11th user on starter: %s", r)
	}
	for _, want := range []string{"10 users", "starter plan", "partyline plan set business", "partyline number member remove +15551230001 USER"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("limit message lacks %q: %s", want, r.err)
		}
	}
	ok(t, dir, "plan", "set", "business")
	ok(t, dir, "number", "member", "add", "+15551230001", "u10")
	r = cli(t, dir, "plan", "set", "starter")
	if r.code != 1 || !strings.Contains(r.err, "+15551230001 (11 users)") || strings.Contains(r.err, "+15551230002") {
		t.Fatalf("downgrade with 11 users: %s", r)
	}
	var plan admin.PlanView
	if err := json.Unmarshal([]byte(ok(t, dir, "-o", "json", "plan", "show")), &plan); err != nil || plan.Plan != "business" || plan.MaxUsersPerNumber != 100 || plan.RingCap != 10 {
		t.Fatalf("plan after refused downgrade: %+v %v", plan, err)
	}
}

func TestCLIBadInput(t *testing.T) {
	dir := seedDir(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"number", "add", "555-0100"}, 1, "bad number \"555-0100\": use E.164, + then 8 to 15 digits"},
		{[]string{"number", "add", "+1555abc0001"}, 1, "use E.164"},
		{[]string{"number", "add", "15551230001"}, 1, "already exists: number +15551230001"},
		{[]string{"user", "add", "mia", "--password", "password1"}, 1, "already exists: user \"mia\""},
		{[]string{"user", "add", "Bad Name", "--password", "password1"}, 1, "bad user name"},
		{[]string{"user", "add", "neo", "--password", "short"}, 1, "at least 8 characters"},
		{[]string{"user", "add", "neo", "--password", "password1", "--role", "boss"}, 1, "bad role \"boss\": use owner, admin or member"},
		{[]string{"user", "set-role", "mia", "king"}, 1, "bad role \"king\""},
		{[]string{"user", "remove", "ghost"}, 1, "unknown user \"ghost\""},
		{[]string{"number", "member", "add", "+15551230001", "ghost"}, 1, "unknown user \"ghost\""},
		{[]string{"number", "member", "add", "+15559999999", "mia"}, 1, "unknown number +15559999999"},
		{[]string{"number", "member", "add", "+15551230001", "mo"}, 1, "already a member"},
		{[]string{"--as", "ghost", "user", "list"}, 1, "unknown user \"ghost\" given with --as"},
		{[]string{"plan", "set", "gold"}, 1, "bad plan \"gold\""},
		{[]string{"trunk", "add", "t", "--address", "nowhere"}, 1, "bad address"},
		{[]string{"trunk", "add", "t", "--address", "1.2.3.4:5060", "--allow", "1.2.3.999"}, 1, "bad source"},
		{[]string{"number", "member", "remove", "+15551230001", "nora"}, 1, "last owner of +15551230001"},
		{[]string{"user", "add"}, 2, "accepts 1 arg"},
		{[]string{"user", "add", "neo"}, 2, "\"password\" not set"},
		{[]string{"user", "frobnicate"}, 2, ""},
		{[]string{"-o", "yaml", "user", "list"}, 2, "bad --output"},
	}
	for _, c := range cases {
		r := cli(t, dir, c.args...)
		if r.code != c.code || !strings.Contains(r.err, c.want) || !strings.HasPrefix(r.err, "partyline: ") {
			t.Errorf("%v: want exit %d with %q, got %s", c.args, c.code, c.want, r)
		}
		if c.code == 1 && strings.Count(r.err, "\n") != 1 {
			t.Errorf("%v: want one line on stderr, got %q", c.args, r.err)
		}
	}
}

func TestCLIJSON(t *testing.T) {
	dir := seedDir(t)
	var users []admin.UserView
	if err := json.Unmarshal([]byte(ok(t, dir, "-o", "json", "user", "list")), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 9 || users[0].Name != "ada" || users[0].Role != "admin" {
		t.Fatalf("users: %+v", users)
	}
	var n admin.NumberView
	if err := json.Unmarshal([]byte(ok(t, dir, "-o", "json", "number", "show", "+1-555-123-0001")), &n); err != nil {
		t.Fatal(err)
	}
	if n.Number != "+15551230001" || n.Name != "Support" || n.MaxUsers != 10 || len(n.Members) != 3 || n.Members[0].User != "nora" || n.Members[0].Role != "owner" {
		t.Fatalf("number: %+v", n)
	}
	var trunks []admin.TrunkView
	if err := json.Unmarshal([]byte(ok(t, dir, "-o", "json", "trunk", "list")), &trunks); err != nil || len(trunks) != 1 || trunks[0].Allow[0] != "192.0.2.0/24" {
		t.Fatalf("trunks: %+v %v", trunks, err)
	}
	// A member sees only the numbers they belong to, in lists too.
	var nums []admin.NumberView
	json.Unmarshal([]byte(ok(t, dir, "--as", "mia", "-o", "json", "number", "list")), &nums)
	if len(nums) != 0 {
		t.Fatalf("mia sees numbers she is not in: %+v", nums)
	}
	json.Unmarshal([]byte(ok(t, dir, "--as", "mo", "-o", "json", "number", "list")), &nums)
	if len(nums) != 1 {
		t.Fatalf("mo sees %+v", nums)
	}
	json.Unmarshal([]byte(ok(t, dir, "--as", "mia", "-o", "json", "user", "list")), &users)
	for _, u := range users {
		if len(u.Numbers) != 0 {
			t.Fatalf("mia sees %s's memberships %v", u.Name, u.Numbers)
		}
	}
}

// script is a sequence of commands, good and bad, whose every output must
// be the same with and without a running server.
var script = [][]string{
	{"user", "add", "olga", "--password", "password1", "--role", "owner"},
	{"user", "add", "mia", "--password", "password1"},
	{"--as", "mia", "user", "add", "neo", "--password", "password1"},
	{"number", "add", "+15551230001", "--name", "Support"},
	{"number", "add", "bogus"},
	{"--as", "olga", "number", "member", "add", "+15551230001", "mia", "--role", "admin"},
	{"--as", "mia", "number", "member", "remove", "+15551230001", "mia"},
	{"-o", "json", "user", "list"},
	{"--as", "mia", "plan", "set", "business"},
	{"plan", "show"},
	{"trunk", "add", "carrier", "--address", "192.0.2.1:5060", "--allow", "192.0.2.7:5060"},
	{"-o", "json", "trunk", "list"},
	{"user", "remove", "ghost"},
}

func runScript(t *testing.T, dir string) []result {
	var out []result
	for _, args := range script {
		r := cli(t, dir, args...)
		out = append(out, r)
	}
	return out
}

// TestCLISameWithServer: the script gives the same stdout, stderr and exit
// status whether the CLI opens the data directory or talks to the server,
// and the server's state reflects each change at once.
func TestCLISameWithServer(t *testing.T) {
	local := runScript(t, t.TempDir())
	dir := t.TempDir()
	srv := startServer(t, dir)
	remote := runScript(t, dir)
	for i := range script {
		l, r := local[i], remote[i]
		// Membership timestamps differ between the runs.
		if l.code != r.code || l.err != r.err || (!strings.Contains(l.out, "added") && l.out != r.out) {
			t.Errorf("%v:\nlocal  %s\nserver %s", script[i], l, r)
		}
	}
	// The running server holds the file: a change went through it.
	srv.await(t, `msg=admin op=number.member.add user=olga number=+15551230001 target=mia role=admin`)
	// Data survives a restart.
	if err := srv.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("server exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("admin socket left after a graceful stop: %v", err)
	}
	startServer(t, dir)
	var n admin.NumberView
	json.Unmarshal([]byte(ok(t, dir, "-o", "json", "number", "show", "+15551230001")), &n)
	if len(n.Members) != 1 || n.Members[0].User != "mia" || n.Members[0].Role != "admin" {
		t.Fatalf("after restart: %+v", n)
	}
}

// TestServerCrashStaleSocket: after kill -9 the socket file stays; the CLI
// then works on the directory itself and a new server starts.
func TestServerCrashStaleSocket(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	ok(t, dir, "user", "add", "olga", "--password", "password1", "--role", "owner")
	srv.stop(syscall.SIGKILL)
	if _, err := os.Stat(filepath.Join(dir, "admin.sock")); err != nil {
		t.Fatalf("expected the stale socket to remain: %v", err)
	}
	ok(t, dir, "user", "add", "mia", "--password", "password1")
	startServer(t, dir)
	if out := ok(t, dir, "user", "list"); !strings.Contains(out, "olga") || !strings.Contains(out, "mia") {
		t.Fatalf("users after crash: %s", out)
	}
}

// TestConcurrentCLI: commands at the same moment, with and without a
// server, all succeed and nothing is lost.
func TestConcurrentCLI(t *testing.T) {
	for _, withServer := range []bool{false, true} {
		t.Run(fmt.Sprintf("server=%v", withServer), func(t *testing.T) {
			dir := t.TempDir()
			ok(t, dir, "number", "add", "+15551230001")
			if withServer {
				startServer(t, dir)
			}
			const n = 12 // two more than the starter plan lets join
			var wg sync.WaitGroup
			adds := make([]result, n)
			joins := make([]result, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					u := fmt.Sprintf("u%02d", i)
					adds[i] = cli(t, dir, "user", "add", u, "--password", "password1")
					joins[i] = cli(t, dir, "number", "member", "add", "+15551230001", u)
				}(i)
			}
			wg.Wait()
			joined := 0
			for i := range adds {
				if adds[i].code != 0 {
					t.Errorf("user add %d: %s", i, adds[i])
				}
				switch {
				case joins[i].code == 0:
					joined++
				case !strings.Contains(joins[i].err, "plan limit: +15551230001 already has 10 users"):
					t.Errorf("member add %d: %s", i, joins[i])
				}
			}
			var users []admin.UserView
			json.Unmarshal([]byte(ok(t, dir, "-o", "json", "user", "list")), &users)
			var nv admin.NumberView
			json.Unmarshal([]byte(ok(t, dir, "-o", "json", "number", "show", "+15551230001")), &nv)
			if len(users) != n || joined != 10 || nv.Users != 10 {
				t.Fatalf("users %d (want %d), joined %d and stored %d (want 10)", len(users), n, joined, nv.Users)
			}
		})
	}
}

func TestServeDemo(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "--demo", "--http", "127.0.0.1:0") // --demo alone: 127.0.0.1:8080
	m := regexp.MustCompile(`\bsip=(127\.0\.0\.1:\d+)`).FindStringSubmatch(srv.await(t, `msg="partyline ready"`))
	if m == nil {
		t.Fatalf("no sip= in the ready line:\n%s", srv.logText())
	}
	out := srv.output(t)
	// The how-to names the address the server really listens on.
	for _, want := range []string{"olivia", "alice", "bob", admin.DemoNumber, "password", "sipsak", "sipp", "text_trunk_send.xml",
		"-s sip:alice@" + m[1], "15555550100 " + m[1], webURL(t, srv) + "api/v1/session"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	var n admin.NumberView
	json.Unmarshal([]byte(ok(t, dir, "-o", "json", "number", "show", admin.DemoNumber)), &n)
	if len(n.Members) != 3 || n.Members[0].Role != "owner" {
		t.Fatalf("demo number: %+v", n)
	}
	if tl := ok(t, dir, "trunk", "list"); !strings.Contains(tl, "127.0.0.1:5080") {
		t.Fatalf("demo trunk: %s", tl)
	}
	srv.stop(syscall.SIGTERM)
	// A second --demo on a workspace that is not empty seeds nothing.
	srv = startServer(t, dir, "--demo", "--http", "127.0.0.1:0")
	if out := srv.output(t); out != "" {
		t.Fatalf("demo seeded twice: %s", out)
	}
}

// TestNoSecretInLogs: passwords never reach the server's log.
func TestNoSecretInLogs(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	ok(t, dir, "user", "add", "olga", "--password", "Sup3rSecretPW", "--role", "owner")
	ok(t, dir, "user", "set-password", "olga", "--password", "An0therSecret")
	srv.await(t, "op=user.set-password")
	srv.stop(syscall.SIGTERM)
	var all strings.Builder
	all.WriteString(srv.logText())
	db, _ := os.ReadFile(filepath.Join(dir, "partyline.db"))
	for _, secret := range []string{"Sup3rSecretPW", "An0therSecret"} {
		if strings.Contains(all.String(), secret) || bytes.Contains(db, []byte(secret)) {
			t.Fatalf("secret %q found in the log or the data file", secret)
		}
	}
}

// TestCLIContacts: the shared address book through the CLI: add, a
// refused duplicate, export and import round trip in both formats.
func TestCLIContacts(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, "user", "add", "mia", "--password", "password1")
	ok(t, dir, "--as", "mia", "contact", "add", "Grace Hopper", "--phone", "+1 555 000 1111", "--phone", "15550002222", "--company", "Navy", "--email", "grace@example.com")
	ok(t, dir, "contact", "add", "Alan Turing", "--phone", "+442079460002")
	if r := cli(t, dir, "contact", "add", "Someone", "--phone", "+15550001111"); r.code != 1 || !strings.Contains(r.err, "already \"Grace Hopper\"'s number") {
		t.Fatalf("duplicate phone: %s", r)
	}
	if r := cli(t, dir, "contact", "add", "Nobody", "--phone", "12"); r.code != 1 || !strings.Contains(r.err, "bad number") {
		t.Fatalf("bad phone: %s", r)
	}
	for _, format := range []string{"vcf", "csv"} {
		exported := ok(t, dir, "contact", "export", "--format", format)
		file := filepath.Join(t.TempDir(), "book."+format)
		if err := os.WriteFile(file, []byte(exported), 0o600); err != nil {
			t.Fatal(err)
		}
		other := t.TempDir()
		if out := ok(t, other, "contact", "import", file); !strings.Contains(out, "imported 2 contacts") {
			t.Fatalf("%s import: %s", format, out)
		}
		if again := ok(t, other, "contact", "export", "--format", format); again != exported {
			t.Fatalf("%s round trip:\n%s\n---\n%s", format, exported, again)
		}
		// Importing the same file again changes nothing: all or none.
		if r := cli(t, other, "contact", "import", file); r.code != 1 {
			t.Fatalf("%s re-import: %s", format, r)
		}
		var cs []map[string]any
		json.Unmarshal([]byte(ok(t, other, "-o", "json", "contact", "list")), &cs)
		if len(cs) != 2 {
			t.Fatalf("%s: %d contacts after a refused re-import", format, len(cs))
		}
	}
}
