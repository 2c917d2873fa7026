package inbox

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/acl"
)

var (
	bucketContacts      = []byte("inbox.contacts")
	bucketContactsPhone = []byte("inbox.contacts.by_phone")
)

// ErrExists: a contact already has that phone number.
var ErrExists = errors.New("already exists")

// ErrInvalid: a contact or a file of contacts is malformed.
var ErrInvalid = errors.New("invalid")

// Contact is one entry of the workspace's shared address book.
type Contact struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Phones  []string  `json:"phones"` // E.164
	Company string    `json:"company,omitempty"`
	Email   string    `json:"email,omitempty"`
	Note    string    `json:"note,omitempty"`
	Created time.Time `json:"created"`
}

// Check validates and normalises the contact (phones to E.164).
func (c *Contact) Check() error {
	c.Name = strings.TrimSpace(c.Name)
	if c.Name == "" || len(c.Name) > 128 || strings.ContainsAny(c.Name, "\r\n\x00") {
		return fmt.Errorf("%w: contact name %q: 1 to 128 characters, no line breaks", ErrInvalid, c.Name)
	}
	if len(c.Phones) == 0 {
		return fmt.Errorf("%w: contact %q has no phone: give --phone E164", ErrInvalid, c.Name)
	}
	seen := map[string]bool{}
	var phones []string
	for _, p := range c.Phones {
		e, err := acl.NormalizeE164(p)
		if err != nil {
			return fmt.Errorf("contact %q: %w", c.Name, err)
		}
		if !seen[e] {
			seen[e] = true
			phones = append(phones, e)
		}
	}
	c.Phones = phones
	if err := acl.CheckEmail(c.Email); err != nil {
		return fmt.Errorf("contact %q: %w", c.Name, err)
	}
	if len(c.Company) > 128 || len(c.Note) > 2000 || strings.ContainsAny(c.Company, "\r\n\x00") {
		return fmt.Errorf("%w: contact %q: company up to 128 characters, note up to 2000", ErrInvalid, c.Name)
	}
	return nil
}

// AddContacts stores the contacts, all or none: every one valid and no
// phone already in the book (nor twice among them).
func (s *Store) AddContacts(cs []Contact) ([]Contact, error) {
	now := s.now().UTC()
	for i := range cs {
		if err := cs[i].Check(); err != nil {
			return nil, err
		}
		cs[i].ID = s.NewID()
		cs[i].Created = now
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, idx := tx.Bucket(bucketContacts), tx.Bucket(bucketContactsPhone)
		for _, c := range cs {
			for _, p := range c.Phones {
				if id := idx.Get([]byte(p)); id != nil {
					var other Contact
					json.Unmarshal(b.Get(id), &other)
					return fmt.Errorf("%w: %s is already %q's number: remove that contact first (\"partyline contact remove %s\")", ErrExists, p, other.Name, other.ID)
				}
				if err := idx.Put([]byte(p), []byte(c.ID)); err != nil {
					return err
				}
			}
			v, err := json.Marshal(c)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(c.ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cs, nil
}

// RemoveContact deletes a contact by id.
func (s *Store) RemoveContact(id string) (Contact, error) {
	var c Contact
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketContacts)
		raw := b.Get([]byte(id))
		if raw == nil {
			return fmt.Errorf("%w: no contact %q: see \"partyline contact list\"", ErrNotFound, id)
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
		for _, p := range c.Phones {
			if err := tx.Bucket(bucketContactsPhone).Delete([]byte(p)); err != nil {
				return err
			}
		}
		return b.Delete([]byte(id))
	})
	return c, err
}

// Contacts lists the book by name.
func (s *Store) Contacts() ([]Contact, error) {
	out := []Contact{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContacts).ForEach(func(k, v []byte) error {
			var c Contact
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("contact %s: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, err
}

// ContactName is the name the book has for an E.164 number.
func (s *Store) ContactName(phone string) (string, bool) {
	var name string
	s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketContactsPhone).Get([]byte(phone))
		if id == nil {
			return nil
		}
		var c Contact
		if json.Unmarshal(tx.Bucket(bucketContacts).Get(id), &c) == nil {
			name = c.Name
		}
		return nil
	})
	return name, name != ""
}

// ParseVCards reads vCards (3.0 or 4.0): FN (or N), every TEL, ORG, EMAIL
// and NOTE; folded lines are unfolded. A card without a name or a phone is
// an error naming its line.
func ParseVCards(r io.Reader) ([]Contact, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && len(lines) > 0 {
			lines[len(lines)-1] += l[1:] // RFC 6350 §3.2 unfolding
			continue
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: reading vCards: %v", ErrInvalid, err)
	}
	var out []Contact
	var cur *Contact
	start := 0
	for i, l := range lines {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		prop := strings.ToUpper(strings.SplitN(name, ";", 2)[0])
		if j := strings.LastIndex(prop, "."); j >= 0 { // group.PROP
			prop = prop[j+1:]
		}
		raw := value
		value = vcardUnescape(value)
		switch prop {
		case "BEGIN":
			cur, start = &Contact{}, i+1
		case "END":
			if cur == nil {
				continue
			}
			if err := cur.Check(); err != nil {
				return nil, fmt.Errorf("vCard at line %d: %w", start, err)
			}
			out = append(out, *cur)
			cur = nil
		case "FN":
			if cur != nil {
				cur.Name = value
			}
		case "N":
			if cur != nil && cur.Name == "" {
				parts := strings.Split(value, ";")
				if len(parts) > 1 {
					cur.Name = strings.TrimSpace(parts[1] + " " + parts[0])
				} else {
					cur.Name = parts[0]
				}
			}
		case "TEL":
			if cur != nil {
				cur.Phones = append(cur.Phones, strings.TrimPrefix(value, "tel:"))
			}
		case "ORG":
			if cur != nil { // components are separated by unescaped ';'
				var parts []string
				for _, p := range splitUnescaped(raw, ';') {
					if p = strings.TrimSpace(vcardUnescape(p)); p != "" {
						parts = append(parts, p)
					}
				}
				cur.Company = strings.Join(parts, ", ")
			}
		case "EMAIL":
			if cur != nil && cur.Email == "" {
				cur.Email = value
			}
		case "NOTE":
			if cur != nil {
				cur.Note = value
			}
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%w: vCard at line %d has no END:VCARD", ErrInvalid, start)
	}
	return out, nil
}

// splitUnescaped splits v at every sep not escaped with a backslash.
func splitUnescaped(v string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case sep:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

func vcardUnescape(v string) string {
	r := strings.NewReplacer(`\n`, "\n", `\N`, "\n", `\,`, ",", `\;`, ";", `\\`, `\`)
	return r.Replace(v)
}

func vcardEscape(v string) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, ",", `\,`, ";", `\;`)
	return r.Replace(v)
}

// WriteVCards writes the contacts as vCard 4.0.
func WriteVCards(w io.Writer, cs []Contact) error {
	bw := bufio.NewWriter(w)
	for _, c := range cs {
		fmt.Fprintf(bw, "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:%s\r\n", vcardEscape(c.Name))
		for _, p := range c.Phones {
			fmt.Fprintf(bw, "TEL;VALUE=uri:tel:%s\r\n", p)
		}
		if c.Company != "" {
			fmt.Fprintf(bw, "ORG:%s\r\n", vcardEscape(c.Company))
		}
		if c.Email != "" {
			fmt.Fprintf(bw, "EMAIL:%s\r\n", vcardEscape(c.Email))
		}
		if c.Note != "" {
			fmt.Fprintf(bw, "NOTE:%s\r\n", vcardEscape(c.Note))
		}
		fmt.Fprint(bw, "END:VCARD\r\n")
	}
	return bw.Flush()
}

// csvHeader is the CSV layout of import and export; phones are separated
// by spaces within their column.
var csvHeader = []string{"name", "phone", "company", "email", "note"}

// ParseCSV reads contacts from CSV with a header naming at least name and
// phone (any order, any case).
func ParseCSV(r io.Reader) ([]Contact, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: CSV without a header line: want %s", ErrInvalid, strings.Join(csvHeader, ","))
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	if _, ok := col["name"]; !ok {
		return nil, fmt.Errorf("%w: CSV header lacks a name column: want %s", ErrInvalid, strings.Join(csvHeader, ","))
	}
	if _, ok := col["phone"]; !ok {
		return nil, fmt.Errorf("%w: CSV header lacks a phone column: want %s", ErrInvalid, strings.Join(csvHeader, ","))
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var out []Contact
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: CSV line %d: %v", ErrInvalid, line, err)
		}
		c := Contact{Name: get(rec, "name"), Phones: strings.Fields(get(rec, "phone")), Company: get(rec, "company"), Email: get(rec, "email"), Note: get(rec, "note")}
		if err := c.Check(); err != nil {
			return nil, fmt.Errorf("CSV line %d: %w", line, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// WriteCSV writes the contacts as CSV with csvHeader.
func WriteCSV(w io.Writer, cs []Contact) error {
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	for _, c := range cs {
		cw.Write([]string{c.Name, strings.Join(c.Phones, " "), c.Company, c.Email, c.Note})
	}
	cw.Flush()
	return cw.Error()
}
