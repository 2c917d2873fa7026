package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partyline/partyline/config"
	"github.com/partyline/partyline/inbox"
)

// vmDir is a data directory holding one voicemail; it returns its id.
func vmDir(t *testing.T) (dir, id string) {
	t.Helper()
	dir = t.TempDir()
	d, err := openData(config.Config{DataDir: dir, Realm: "test.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n, err := d.stores.Directory.AddNumber("", "+15551230001", "")
	if err != nil {
		t.Fatal(err)
	}
	v := &inbox.Voicemail{ID: d.stores.Inbox.NewID(), Number: n, From: "+15550009999"}
	if err := d.stores.Inbox.SaveVoicemail(v, make([]byte, 1600), nil); err != nil {
		t.Fatal(err)
	}
	return dir, v.ID
}

// TestExportSymlinks is issue 14's finding 8: another user plants symbolic
// links at --out FILE and at FILE.partial pointing at a file root can
// write; "voicemail export" must leave that file alone, still save the
// message when FILE itself is free, and refuse a FILE that is a link.
func TestExportSymlinks(t *testing.T) {
	dir, id := vmDir(t)
	victim := filepath.Join(t.TempDir(), "victim")
	const precious = "root's precious file\n"
	if err := os.WriteFile(victim, []byte(precious), 0o644); err != nil {
		t.Fatal(err)
	}
	untouched := func() {
		t.Helper()
		if b, err := os.ReadFile(victim); err != nil || string(b) != precious {
			t.Fatalf("the victim file was written through a link: now %d bytes starting %.12q (%v)", len(b), b, err)
		}
	}
	out := t.TempDir()

	// A link at FILE.partial (the old temp name): the export works and
	// neither follows nor removes it.
	f := filepath.Join(out, "message.wav")
	if err := os.Symlink(victim, f+".partial"); err != nil {
		t.Fatal(err)
	}
	r := cli(t, dir, "voicemail", "export", id, "--out", f)
	untouched()
	if r.code != 0 {
		t.Fatalf("export beside a planted FILE.partial: %s", r)
	}
	if fi, err := os.Lstat(f); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s is not a regular file after the export: %v %v", f, fi, err)
	}
	if b, _ := os.ReadFile(f); !bytes.HasPrefix(b, []byte("RIFF")) || len(b) < 1600 {
		t.Fatalf("%s is not the exported WAV (%d bytes)", f, len(b))
	}
	if l, err := os.Readlink(f + ".partial"); err != nil || l != victim {
		t.Fatalf("the planted link was changed: %q %v", l, err)
	}

	// A link at FILE: refused, saying so and what to do.
	g := filepath.Join(out, "other.wav")
	if err := os.Symlink(victim, g); err != nil {
		t.Fatal(err)
	}
	r = cli(t, dir, "voicemail", "export", id, "--out", g)
	untouched()
	if r.code != 1 || !strings.Contains(r.err, g+" is a symbolic link") || !strings.Contains(r.err, "give the path of the file itself") || strings.Count(r.err, "\n") != 1 {
		t.Fatalf("export to a link: want exit 1 and one line naming the link and the fix: %s", r)
	}
	if l, err := os.Readlink(g); err != nil || l != victim {
		t.Fatalf("the planted link was changed: %q %v", l, err)
	}

	// Nothing else was left behind.
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "message.wav message.wav.partial other.wav" {
		t.Fatalf("files left in the output directory: %v", names)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	for _, data := range []string{"first", "second"} {
		if err := writeFileAtomic(f, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(f); string(b) != data {
			t.Fatalf("got %q, want %q", b, data)
		}
	}
	if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := writeFileAtomic(dir, []byte("x")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory as the target: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temp files left behind: %v", ents)
	}
}
