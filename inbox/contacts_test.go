package inbox

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	s, _ := clockStore(t)
	return s
}

func TestContactsAllOrNothing(t *testing.T) {
	s := openStore(t)
	if _, err := s.AddContacts([]Contact{{Name: "Ada Lovelace", Phones: []string{"+44 20 7946 0001"}, Company: "Engines"}}); err != nil {
		t.Fatal(err)
	}
	if n, ok := s.ContactName("+442079460001"); !ok || n != "Ada Lovelace" {
		t.Fatalf("lookup: %q %v", n, ok)
	}
	// A batch with one taken phone stores nothing.
	_, err := s.AddContacts([]Contact{{Name: "New", Phones: []string{"+15550001111"}}, {Name: "Dup", Phones: []string{"442079460001"}}})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "Ada Lovelace") {
		t.Fatalf("duplicate: %v", err)
	}
	if _, ok := s.ContactName("+15550001111"); ok {
		t.Fatal("half a batch stored")
	}
	for _, bad := range []Contact{{Name: "", Phones: []string{"+15550001111"}}, {Name: "x"}, {Name: "x", Phones: []string{"12"}}, {Name: "x", Phones: []string{"+15550001111"}, Email: "nope"}} {
		if _, err := s.AddContacts([]Contact{bad}); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	cs, _ := s.Contacts()
	if len(cs) != 1 {
		t.Fatalf("contacts %+v", cs)
	}
	if _, err := s.RemoveContact(cs[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.ContactName("+442079460001"); ok {
		t.Fatal("removed contact still named")
	}
}

// TestVCardAndCSVRoundTrip: export, import into an empty book, export
// again: the same contacts, byte for byte.
func TestVCardAndCSVRoundTrip(t *testing.T) {
	in := []Contact{
		{Name: "Grace Hopper", Phones: []string{"+15550001111", "+15550002222"}, Company: "Navy, Inc; R&D", Email: "grace@example.com", Note: "Compilers\nand COBOL"},
		{Name: "Alan Turing", Phones: []string{"+442079460002"}},
	}
	for _, format := range []string{"vcf", "csv"} {
		s := openStore(t)
		if _, err := s.AddContacts(append([]Contact(nil), in...)); err != nil {
			t.Fatal(err)
		}
		write, parse := WriteVCards, ParseVCards
		if format == "csv" {
			write, parse = WriteCSV, ParseCSV
		}
		cs, _ := s.Contacts()
		var first bytes.Buffer
		if err := write(&first, cs); err != nil {
			t.Fatal(err)
		}
		parsed, err := parse(bytes.NewReader(first.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, first.String())
		}
		s2 := openStore(t)
		if _, err := s2.AddContacts(parsed); err != nil {
			t.Fatal(err)
		}
		cs2, _ := s2.Contacts()
		var second bytes.Buffer
		write(&second, cs2)
		if first.String() != second.String() {
			t.Fatalf("%s round trip differs:\n%s\n---\n%s", format, first.String(), second.String())
		}
		for i := range cs {
			a, b := cs[i], cs2[i]
			a.ID, b.ID, a.Created, b.Created = "", "", time.Time{}, time.Time{}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%s: %+v != %+v", format, a, b)
			}
		}
	}
}

func TestParseForeignVCard(t *testing.T) {
	card := "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Curie;Marie;;;\r\nitem1.TEL;TYPE=CELL:+33 1 23 45 67\r\n 89\r\nORG:Institut;Radium\r\nEND:VCARD\r\n"
	cs, err := ParseVCards(strings.NewReader(card))
	if err != nil || len(cs) != 1 || cs[0].Name != "Marie Curie" || cs[0].Phones[0] != "+33123456789" || cs[0].Company != "Institut, Radium" {
		t.Fatalf("%+v %v", cs, err)
	}
	if _, err := ParseVCards(strings.NewReader("BEGIN:VCARD\r\nFN:No Phone\r\nEND:VCARD\r\n")); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("card without phone: %v", err)
	}
	if _, err := ParseCSV(strings.NewReader("name,phone\nBob,+15550001111\nEve,notaphone\n")); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("bad CSV line: %v", err)
	}
}
