package main

// Interop tests: real SIP clients we did not write (SIPp, sipsak, baresip)
// register against the built binary over UDP and TCP, on loopback only.
// Every process started here is stopped by its PID and bounded in time.
// The scenarios live in testdata/sipp.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/partyline/partyline/admin"
)

// sipServer starts "partyline serve" on a fresh data directory with the
// given users (name, password) and returns the directory, the server and
// its SIP port (UDP and TCP).
func sipServer(t *testing.T, users ...[2]string) (string, *server, int) {
	t.Helper()
	dir := t.TempDir()
	for _, u := range users {
		ok(t, dir, "user", "add", u[0], "--password", u[1])
	}
	srv := startServer(t, dir)
	m := regexp.MustCompile(`\bsip=(\S+)`).FindStringSubmatch(srv.await(t, `msg="partyline ready"`))
	if m == nil {
		t.Fatalf("no sip= in the ready line:\n%s", srv.logText())
	}
	_, p, err := net.SplitHostPort(strings.Split(m[1], ",")[0])
	if err != nil {
		t.Fatalf("ready line sip=%s: %v", m[1], err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return dir, srv, port
}

// freePort returns a loopback port that is free on UDP and TCP, and whose
// next port is free on TCP too (baresip listens on both). The clients take
// a port number, not a socket, so there is a short window in which another
// process could take it; on loopback in a test run that is acceptable.
func freePort(t *testing.T) int {
	t.Helper()
	for try := 0; try < 20; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		var open []net.Listener
		good := port < 65535
		for p := port; good && p <= port+1; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				good = false
				break
			}
			open = append(open, ln)
		}
		for _, ln := range open {
			ln.Close()
		}
		pc.Close()
		if good {
			return port
		}
	}
	t.Fatal("no free loopback port")
	return 0
}

// runPeer runs an external client in dir, bounded by limit, and returns its
// output and exit status. Hitting the limit fails the test.
func runPeer(t *testing.T, dir string, limit time.Duration, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{so.String(), se.String(), 0}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: still running after %s\n%s", bin, strings.Join(args, " "), limit, r)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", bin, err)
	}
	return r
}

// sipp runs one SIPp scenario from testdata/sipp against the server on
// port, over transport ("u1" or "t1"), with calls calls at 50 per second.
// csv is the injection file's content. Extra arguments go last.
func sipp(t *testing.T, port int, scenario, transport, csv string, calls int, extra ...string) result {
	t.Helper()
	bin := requirePeer(t, "sipp")
	sf, err := filepath.Abs(filepath.Join("..", "..", "testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir() // SIPp writes its logs into its working directory
	inf := filepath.Join(work, "users.csv")
	if err := os.WriteFile(inf, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-sf", sf, "-inf", inf, fmt.Sprintf("127.0.0.1:%d", port),
		"-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", strconv.Itoa(freePort(t)), "-t", transport,
		"-m", strconv.Itoa(calls), "-r", "50", "-timeout", "30s", "-timeout_error", "-nostdin", "-trace_err"}
	r := runPeer(t, work, 45*time.Second, bin, append(args, extra...)...)
	if logs, _ := filepath.Glob(filepath.Join(work, "*_errors.log")); len(logs) > 0 {
		b, _ := os.ReadFile(logs[0])
		r.err += "\nSIPp errors log:\n" + string(b)
	}
	return r
}

// registrations lists the bindings (of user, if not empty) through the CLI.
func registrations(t *testing.T, dir, user string) []admin.Registration {
	t.Helper()
	args := []string{"-o", "json", "registrations"}
	if user != "" {
		args = append(args, "--user", user)
	}
	var regs []admin.Registration
	if err := json.Unmarshal([]byte(ok(t, dir, args...)), &regs); err != nil {
		t.Fatal(err)
	}
	return regs
}

func byUser(regs []admin.Registration) map[string][]admin.Registration {
	m := map[string][]admin.Registration{}
	for _, r := range regs {
		m[r.User] = append(m[r.User], r)
	}
	return m
}

// ansi matches the colour escapes baresip writes even to a pipe.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

var transports = []struct{ name, sipp string }{{"udp", "u1"}, {"tcp", "t1"}}

// TestInteropSIPpRegister: 20 digest registrations from SIPp for two users
// (ten devices each, so the five-device cap applies), then an unregister
// of one user with Contact: *, then the bindings survive a restart.
func TestInteropSIPpRegister(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			requirePeer(t, "sipp")
			dir, srv, port := sipServer(t, [2]string{"alice", "alice-pass-1"}, [2]string{"bob", "bob-pass-22"})
			users := "SEQUENTIAL\nalice;alice-pass-1\nbob;bob-pass-22\n"
			if r := sipp(t, port, "register.xml", tr.sipp, users, 20); r.code != 0 {
				t.Fatalf("SIPp register over %s: %s", tr.name, r)
			}
			start := time.Now()
			got := byUser(registrations(t, dir, ""))
			for _, u := range []string{"alice", "bob"} {
				if len(got[u]) != 5 {
					t.Fatalf("%s has %d bindings after 10 registrations, want the cap of 5: %+v", u, len(got[u]), got[u])
				}
				for _, b := range got[u] {
					left := b.ExpiresAt.Sub(start)
					if b.Transport != tr.name || b.UserAgent != "SIPp partyline-interop" ||
						!strings.HasPrefix(b.Contact, "sip:"+u+"-") || !strings.HasPrefix(b.Source, "127.0.0.1:") ||
						left < 590*time.Second || left > 601*time.Second {
						t.Errorf("binding %+v: want transport %s, SIPp's user agent, contact %s-N, expiry in 600 s", b, tr.name, u)
					}
				}
			}

			if r := sipp(t, port, "unregister.xml", tr.sipp, "SEQUENTIAL\nalice;alice-pass-1\n", 1); r.code != 0 {
				t.Fatalf("SIPp unregister over %s: %s", tr.name, r)
			}
			got = byUser(registrations(t, dir, ""))
			if len(got["alice"]) != 0 || len(got["bob"]) != 5 {
				t.Fatalf("after alice's Contact: * unregister: alice %d, bob %d bindings, want 0 and 5", len(got["alice"]), len(got["bob"]))
			}

			// Persisted: with the server stopped, the CLI reads the file.
			if err := srv.stop(syscall.SIGTERM); err != nil {
				t.Fatalf("server exit: %v", err)
			}
			if got := byUser(registrations(t, dir, "")); len(got["alice"]) != 0 || len(got["bob"]) != 5 {
				t.Fatalf("from the data file: alice %d, bob %d bindings, want 0 and 5", len(got["alice"]), len(got["bob"]))
			}
		})
	}
}

// TestInteropSIPpWrongPassword: a wrong password is answered with a fresh
// 401 five times; the sixth failure bans the source, which is logged once,
// and from then on even the right password gets silence.
func TestInteropSIPpWrongPassword(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			requirePeer(t, "sipp")
			dir, srv, port := sipServer(t, [2]string{"alice", "alice-pass-1"})
			wrong := "SEQUENTIAL\nalice;alice-pass-2\n"
			if r := sipp(t, port, "register_wrong.xml", tr.sipp, wrong, 5); r.code != 0 {
				t.Fatalf("SIPp wrong password over %s: %s", tr.name, r)
			}
			if strings.Contains(srv.logText(), "auth_ban") {
				t.Fatalf("banned after 5 failures, the threshold tolerates 5:\n%s", srv.logText())
			}
			if r := sipp(t, port, "register_wrong.xml", tr.sipp, wrong, 1); r.code != 0 {
				t.Fatalf("SIPp sixth wrong password over %s: %s", tr.name, r)
			}
			srv.await(t, `msg=security event=auth_ban src=127.0.0.1`)
			// Banned: no answer at all, so the call fails on its receive
			// timeout (2 s, with SIPp's UDP retransmissions in between).
			r := sipp(t, port, "register.xml", tr.sipp, "SEQUENTIAL\nalice;alice-pass-1\n", 1, "-recv_timeout", "2000")
			if r.code != 1 || !strings.Contains(r.err, "timeout") {
				t.Fatalf("SIPp from a banned source over %s: want a failed call on timeout, got %s", tr.name, r)
			}
			if n := strings.Count(srv.logText(), "event=auth_ban"); n != 1 {
				t.Fatalf("auth_ban logged %d times, want once:\n%s", n, srv.logText())
			}
			if regs := registrations(t, dir, "alice"); len(regs) != 0 {
				t.Fatalf("bindings after wrong passwords and a ban: %+v", regs)
			}
		})
	}
}

// TestInteropSipsak: sipsak registers with digest over UDP and TCP, fails
// with a wrong password, and gets 200 to OPTIONS.
func TestInteropSipsak(t *testing.T) {
	bin := requirePeer(t, "sipsak")
	dir, _, port := sipServer(t, [2]string{"alice", "alice-pass-1"}, [2]string{"bob", "bob-pass-22"})
	work := t.TempDir()
	register := func(user, password, transport string) (result, string) {
		contact := fmt.Sprintf("sip:%s@127.0.0.1:%d", user, freePort(t))
		return runPeer(t, work, 30*time.Second, bin, "-U", "-i", "-C", contact,
			"-s", fmt.Sprintf("sip:%s@127.0.0.1:%d", user, port), "-u", user, "-a", password,
			"-x", "600", "-H", "127.0.0.1", "-E", transport), contact
	}
	for _, tr := range []string{"udp", "tcp"} {
		r, contact := register("alice", "alice-pass-1", tr)
		if r.code != 0 {
			t.Fatalf("sipsak register over %s: %s", tr, r)
		}
		var found bool
		for _, b := range registrations(t, dir, "alice") {
			if b.Contact == contact {
				found = true
				if b.Transport != tr || !strings.Contains(b.UserAgent, "sipsak") {
					t.Errorf("sipsak binding over %s: %+v", tr, b)
				}
			}
		}
		if !found {
			t.Fatalf("no binding for %s after sipsak over %s: %+v", contact, tr, registrations(t, dir, "alice"))
		}
	}
	// sipsak exits 2 when its credentials are refused.
	if r, _ := register("bob", "bob-pass-23", "udp"); r.code == 0 || !strings.Contains(r.out+r.err, "authorization failed") {
		t.Fatalf("sipsak with a wrong password: %s", r)
	}
	if regs := registrations(t, dir, "bob"); len(regs) != 0 {
		t.Fatalf("bindings after a wrong password: %+v", regs)
	}
	for _, tr := range []string{"udp", "tcp"} {
		if r := runPeer(t, work, 30*time.Second, bin, "-s", fmt.Sprintf("sip:x@127.0.0.1:%d", port), "-H", "127.0.0.1", "-E", tr); r.code != 0 {
			t.Fatalf("sipsak OPTIONS over %s: %s", tr, r)
		}
	}
}

// peerProcess is a long-running client, stopped by its PID.
type peerProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    []string      // output lines so far
	line   chan string   // each line, for waiting on one
	exited chan struct{} // closed when the process has exited
}

func startPeer(t *testing.T, dir, bin string, args ...string) *peerProcess {
	t.Helper()
	p := &peerProcess{cmd: exec.Command(bin, args...), line: make(chan string, 256), exited: make(chan struct{})}
	p.cmd.Dir = dir
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			select {
			case p.line <- sc.Text():
			default: // nobody is waiting on that many lines: the log keeps them
			}
		}
	}()
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop sends SIGTERM and waits for the exit, killing after 10 s.
func (p *peerProcess) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *peerProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.out, "\n")
}

// TestInteropBaresip: baresip, a softphone, registers headless over UDP and
// TCP with digest; its Contact user is its own (alice-0x...), not the AOR's.
// When it quits it unregisters.
func TestInteropBaresip(t *testing.T) {
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			bin := requirePeer(t, "baresip")
			dir, _, port := sipServer(t, [2]string{"alice", "alice-pass-1"})
			outbound := fmt.Sprintf("sip:127.0.0.1:%d", port)
			if tr == "tcp" {
				outbound += ";transport=tcp"
			}
			// Registration only: no audio modules, no user interface.
			cfg := baresip{user: "alice", password: "alice-pass-1", outbound: outbound}.config(t)
			p := startPeer(t, cfg, bin, "-f", cfg)

			// Wait for the binding. Registration is an effect inside two
			// other processes with no event we can subscribe to, so poll the
			// server through the CLI, bounded: at most 50 looks, 100 ms apart.
			// baresip's own failure line ends the wait early.
			var regs []admin.Registration
			for polls := 0; polls < 50 && len(regs) == 0; {
				select {
				case l := <-p.line:
					l = ansi.ReplaceAllString(l, "")
					if strings.Contains(l, "Register:") {
						t.Fatalf("baresip failed to register over %s: %s\n%s", tr, l, p.output())
					}
				case <-p.exited:
					t.Fatalf("baresip exited:\n%s", p.output())
				case <-time.After(100 * time.Millisecond):
					polls++
					regs = registrations(t, dir, "alice")
				}
			}
			if len(regs) != 1 {
				t.Fatalf("baresip over %s: bindings %+v\nbaresip output:\n%s", tr, regs, p.output())
			}
			b := regs[0]
			if b.Transport != tr || !strings.Contains(b.UserAgent, "baresip") || !strings.HasPrefix(b.Contact, "sip:alice-0x") {
				t.Fatalf("baresip binding over %s: %+v", tr, b)
			}

			// On SIGTERM baresip unregisters before it exits.
			p.stop()
			for i := 0; i < 20 && len(regs) != 0; i++ {
				// The 200 to its REGISTER with expires 0 may cross its exit:
				// bounded poll, as above.
				if i > 0 {
					time.Sleep(50 * time.Millisecond)
				}
				regs = registrations(t, dir, "alice")
			}
			if len(regs) != 0 {
				t.Fatalf("baresip quit over %s, its binding stayed: %+v\n%s", tr, regs, p.output())
			}
		})
	}
}
