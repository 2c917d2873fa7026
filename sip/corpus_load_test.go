package sip

// Reading the RFC 4475 and RFC 5118 corpora and their expectations
// (testdata/rfc4475, testdata/rfc5118).

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// expectation is one EXPECT.tsv verdict.
type expectation struct {
	kind  string // accept | reply | drop | either
	codes []int  // for reply
}

func (x expectation) String() string {
	if x.kind != "reply" {
		return x.kind
	}
	s := make([]string, len(x.codes))
	for i, c := range x.codes {
		s[i] = strconv.Itoa(c)
	}
	return "reply " + strings.Join(s, "/")
}

func parseExpectation(s string) (expectation, error) {
	kind, codes, _ := strings.Cut(strings.TrimSpace(s), " ")
	x := expectation{kind: kind}
	switch kind {
	case "accept", "drop", "either":
		if codes != "" {
			return x, errors.New("unexpected codes after " + kind)
		}
	case "reply":
		for _, c := range strings.Split(codes, "/") {
			n, err := strconv.Atoi(strings.TrimSpace(c))
			if err != nil || n < 100 || n > 699 {
				return x, errors.New("bad status " + strconv.Quote(c))
			}
			x.codes = append(x.codes, n)
		}
	default:
		return x, errors.New("unknown expectation " + strconv.Quote(s))
	}
	return x, nil
}

// torture is one corpus file and what must happen to it.
type torture struct {
	file   string
	class  string // V, I, L, S (RFC 4475); "" for RFC 5118
	expect expectation
	what   string
	data   []byte
}

// response reports whether the message is a response (no answer is ever due).
func (c torture) response() bool { return bytes.HasPrefix(c.data, []byte("SIP/")) }

// corpusDir returns ../testdata/<name>, the corpus kept in the repository;
// missing, it fails the test.
func corpusDir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join("..", "testdata", name)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("corpus %s missing (%v): the RFC torture messages belong in testdata/%s", dir, err, name)
	}
	return dir
}

// loadRFC4475 reads EXPECT.tsv and every file it names.
func loadRFC4475(t testing.TB) []torture {
	t.Helper()
	dir := corpusDir(t, "rfc4475")
	f, err := os.Open(filepath.Join(dir, "EXPECT.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []torture
	sc := bufio.NewScanner(f)
	header := true
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.HasPrefix(text, "#") || strings.TrimSpace(text) == "" {
			continue
		}
		cols := strings.Split(text, "\t")
		if header {
			header = false
			if cols[0] == "file" {
				continue
			}
		}
		if len(cols) < 3 {
			t.Fatalf("EXPECT.tsv:%d: want file, class, expect, what; got %q", line, text)
		}
		x, err := parseExpectation(cols[2])
		if err != nil {
			t.Fatalf("EXPECT.tsv:%d: %v", line, err)
		}
		c := torture{file: cols[0], class: cols[1], expect: x}
		if len(cols) > 3 {
			c.what = cols[3]
		}
		if c.data, err = os.ReadFile(filepath.Join(dir, c.file)); err != nil {
			t.Fatalf("EXPECT.tsv:%d: %v", line, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// Every .dat file must have a row, so a new file is never silently skipped.
	dats, _ := filepath.Glob(filepath.Join(dir, "*.dat"))
	for _, d := range dats {
		if !slices.ContainsFunc(out, func(c torture) bool { return c.file == filepath.Base(d) }) {
			t.Errorf("%s has no row in EXPECT.tsv", filepath.Base(d))
		}
	}
	if len(out) == 0 {
		t.Fatal("EXPECT.tsv names no files")
	}
	return out
}

// rfc5118Expect is what rfc5118/README.md asks of each file.
var rfc5118Expect = map[string]expectation{
	"ipv6-good":                     {kind: "accept"},
	"port-unambiguous":              {kind: "accept"},
	"port-ambiguous":                {kind: "accept"},
	"via-received-param-with-delim": {kind: "accept"},
	"via-received-param-no-delim":   {kind: "accept"},
	"ipv6-in-sdp":                   {kind: "accept"},
	"mult-ip-in-header":             {kind: "accept"},
	"mult-ip-in-sdp":                {kind: "accept"},
	"ipv4-mapped-ipv6":              {kind: "accept"},
	"ipv6-correct-abnf-2-colons":    {kind: "accept"},
	"ipv6-bad":                      {kind: "reply", codes: []int{400}},
	// RFC 5118 asks for tolerance, RFC 5954 made it invalid: either.
	"ipv6-bug-abnf-3-colons": {kind: "either"},
}

func loadRFC5118(t testing.TB) []torture {
	t.Helper()
	dir := corpusDir(t, "rfc5118")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []torture
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		x, ok := rfc5118Expect[e.Name()]
		if !ok {
			t.Errorf("rfc5118/%s: no expectation in rfc5118Expect", e.Name())
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, torture{file: e.Name(), expect: x, data: data})
	}
	for name := range rfc5118Expect {
		if !slices.ContainsFunc(out, func(c torture) bool { return c.file == name }) {
			t.Errorf("rfc5118/%s missing", name)
		}
	}
	return out
}
