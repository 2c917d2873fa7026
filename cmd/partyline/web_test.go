package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// webURL is the first URL the server logged it serves HTTP on.
func webURL(t *testing.T, s *server) string {
	t.Helper()
	m := regexp.MustCompile(`url="?\[(https?://[^ \]/]+/)`).FindStringSubmatch(s.await(t, `msg="http serving"`))
	if m == nil {
		t.Fatalf("no url in the http line:\n%s", s.logText())
	}
	return m[1]
}

func httpDo(t *testing.T, hc *http.Client, method, url, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestServeHTTP: serve --http serves the API on the running server's
// stores: a login works, CLI changes through the admin socket take effect
// at once (a token made works, revoked stops; a new password ends the
// session).
func TestServeHTTP(t *testing.T) {
	dir := seedDir(t)
	srv := startServer(t, dir, "--http", "127.0.0.1:0")
	base := webURL(t, srv) + "api/v1/"
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	if code, body, _ := httpDo(t, hc, "POST", base+"session", `{"user":"mo","password":"secret-mo"}`); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	if code, body, _ := httpDo(t, hc, "GET", base+"numbers", ""); code != 200 || !strings.Contains(body, "+15551230001") {
		t.Fatalf("numbers: %d %s", code, body)
	}
	out := ok(t, dir, "token", "create", "nora", "--name", "crm")
	secret := strings.TrimSpace(strings.Split(strings.TrimSpace(out), "\n")[1])
	plain := &http.Client{Timeout: 10 * time.Second}
	if code, body, _ := httpDo(t, plain, "GET", base+"me", "", "Authorization", "Bearer "+secret); code != 200 || !strings.Contains(body, `"user":"nora"`) {
		t.Fatalf("token made by the CLI: %d %s", code, body)
	}
	id := regexp.MustCompile(`tok_[0-9a-f]+`).FindString(out)
	ok(t, dir, "token", "revoke", id)
	if code, _, _ := httpDo(t, plain, "GET", base+"me", "", "Authorization", "Bearer "+secret); code != 401 {
		t.Fatalf("revoked token: %d", code)
	}
	ok(t, dir, "user", "set-password", "mo", "--password", "secret-mo-2")
	if code, body, _ := httpDo(t, hc, "GET", base+"me", ""); code != 401 {
		t.Fatalf("session after set-password: %d %s", code, body)
	}
	if strings.Contains(srv.logText(), "secret-mo") || strings.Contains(srv.logText(), secret) {
		t.Fatal("a secret reached the log")
	}
	if err := srv.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v\n%s", err, srv.logText())
	}
}

// TestServeHTTPS: --tls-cert and --tls-key serve HTTPS, and the session
// cookie is Secure there.
func TestServeHTTPS(t *testing.T) {
	dir := seedDir(t)
	cert, key := selfSigned(t)
	srv := startServer(t, dir, "--http", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	base := webURL(t, srv)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("url %s", base)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	code, body, h := httpDo(t, hc, "POST", base+"api/v1/session", `{"user":"mo","password":"secret-mo"}`)
	if code != 200 || !strings.Contains(h.Get("Set-Cookie"), "Secure") {
		t.Fatalf("login over TLS: %d %s %q", code, body, h.Get("Set-Cookie"))
	}
	if strings.Contains(srv.logText(), "without TLS") {
		t.Fatal("warned about plain HTTP under TLS")
	}
}

// TestServeHTTPFlags: plain HTTP on an address other than loopback is
// served with a warning; a certificate without its key is refused.
func TestServeHTTPFlags(t *testing.T) {
	dir := seedDir(t)
	srv := startServer(t, dir, "--http", "0.0.0.0:0")
	srv.await(t, "without TLS")
	srv.stop(syscall.SIGTERM)
	cert, _ := selfSigned(t)
	r := cli(t, dir, "serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--tls-cert", cert)
	if r.code != 1 || !strings.Contains(r.err, "--tls-cert and --tls-key go together") {
		t.Fatalf("cert without key: %s", r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r = cli(t, dir, "serve", "--sip", "127.0.0.1:0", "--http", ln.Addr().String())
	if r.code != 1 || !strings.Contains(r.err, "--http "+ln.Addr().String()) {
		t.Fatalf("busy port: %s", r)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(k)
	d := t.TempDir()
	cert, key = filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}
