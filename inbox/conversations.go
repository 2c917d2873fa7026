package inbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/acl"
)

// A conversation is one shared number with one outside party. Its
// timeline is an append-only list of events, keyed conversation id + event
// id (both time-ordered), so it reads in time order with one cursor walk.
var (
	bucketConv        = []byte("inbox.conv")          // conv id → Conversation
	bucketConvParty   = []byte("inbox.conv.by_party") // number \0 party → conv id
	bucketConvNumber  = []byte("inbox.conv.by_number")
	bucketConvState   = []byte("inbox.conv.by_state")
	bucketConvRead    = []byte("inbox.conv.read")        // conv id \0 user → event id read up to
	bucketEvents      = []byte("inbox.events")           // conv id + event id → Event
	bucketEventNumber = []byte("inbox.events.by_number") // number \0 event id → conv id
	bucketItems       = []byte("inbox.items")            // item id → conv id
)

// Kinds of timeline events. Calls, voicemail, messages and comments are
// items; openings and state changes are activity.
const (
	KindCall      = "call"
	KindVoicemail = "voicemail"
	KindMessage   = "message"
	KindComment   = "comment"
	KindOpened    = "opened"
	KindState     = "state"
)

// Conversation states.
const (
	StateOpen   = "open"   // the default
	StateUnread = "unread" // nobody has opened it since its last inbound item
	StateDone   = "done"   // archived until new inbound activity
)

// ValidState reports one of the three states.
func ValidState(s string) bool { return s == StateOpen || s == StateUnread || s == StateDone }

// Conversation is one number's thread with one outside party.
type Conversation struct {
	ID          string    `json:"id"`
	Number      string    `json:"number"`
	Party       string    `json:"party"`
	State       string    `json:"state"`
	Created     time.Time `json:"created"`
	LastItem    string    `json:"last_item"` // event id of the newest item
	LastAt      time.Time `json:"last_at"`
	LastKind    string    `json:"last_kind"`
	LastSummary string    `json:"last_summary"`
	LastInbound string    `json:"last_inbound,omitempty"` // event id of the newest inbound item
	LastEvent   string    `json:"last_event"`             // event id of the newest event of any kind
	Items       int       `json:"items"`
}

// Event is one entry of a conversation's timeline.
type Event struct {
	ID      string    `json:"id"`
	Conv    string    `json:"conversation"`
	Number  string    `json:"number"`
	Kind    string    `json:"kind"`
	At      time.Time `json:"at"`
	Inbound bool      `json:"inbound,omitempty"`
	Ref     string    `json:"ref,omitempty"`    // the call, voicemail or message
	User    string    `json:"user,omitempty"`   // who sent, commented, opened or changed the state
	Text    string    `json:"text,omitempty"`   // a comment's text, an item's summary
	Parent  string    `json:"parent,omitempty"` // a comment's item or the comment it answers
	Thread  string    `json:"thread,omitempty"` // the item a comment's thread hangs on
	State   string    `json:"state,omitempty"`  // a state change's new state
}

// Item is the id comments and the CLI use for an event: its record's id
// for calls, voicemail and messages, the event's own id for comments.
func (e Event) Item() string {
	if e.Ref != "" {
		return e.Ref
	}
	return e.ID
}

func (s *Store) convBuckets(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketConv, bucketConvParty, bucketConvNumber, bucketConvState, bucketConvRead,
		bucketEvents, bucketEventNumber, bucketItems, bucketMessages, bucketMessageKeys} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// Party is how a conversation names the outside party: E.164 when the
// address is a phone number, else the address's user part as it came
// ("anonymous" when there is none: withheld caller IDs share one).
func Party(raw string) string {
	if e, err := acl.NormalizeE164(raw); err == nil {
		return e
	}
	if raw = strings.TrimSpace(raw); raw == "" {
		return "anonymous"
	}
	return raw
}

func summary(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) <= 80 {
		return text
	}
	r := []rune(text)
	return string(r[:79]) + "…"
}

// appendItem adds an item to the conversation of number and party (made
// when new): inbound items make it unread (reopening a done one). ev.ID and
// newConv are made before the transaction, so a retried batch writes the
// same keys. feed, when not nil, emits the item's own feed events once the
// conversation is known; conversation.updated follows when the item made
// the conversation or changed its state. A nil feed emits nothing (the
// backfill of an old workspace).
func (s *Store) appendItem(tx *bolt.Tx, number, party, newConv string, ev *Event, feed func(c *Conversation) error) (Conversation, error) {
	var c, was Conversation
	pk := []byte(number + "\x00" + party)
	if id := tx.Bucket(bucketConvParty).Get(pk); id != nil {
		var err error
		if c, err = getConv(tx, string(id)); err != nil {
			return c, err
		}
		was = c
	} else {
		c = Conversation{ID: newConv, Number: number, Party: party, State: StateOpen, Created: ev.At}
		if err := tx.Bucket(bucketConvParty).Put(pk, []byte(c.ID)); err != nil {
			return c, err
		}
	}
	old := c
	ev.Conv, ev.Number = c.ID, number
	if err := putEvent(tx, ev); err != nil {
		return c, err
	}
	if err := tx.Bucket(bucketItems).Put([]byte(ev.Item()), []byte(c.ID)); err != nil {
		return c, err
	}
	// The newest by id, not the last written: two writers' batches may
	// commit in the other order than their ids were made.
	if ev.ID > c.LastItem {
		c.LastItem, c.LastAt, c.LastKind, c.LastSummary = ev.ID, ev.At, ev.Kind, itemSummary(ev)
	}
	c.LastEvent = max(c.LastEvent, ev.ID)
	c.Items++
	if ev.Inbound {
		c.LastInbound = max(c.LastInbound, ev.ID)
		c.State = StateUnread
	}
	if err := putConv(tx, &old, &c); err != nil || feed == nil {
		return c, err
	}
	if err := feed(&c); err != nil {
		return c, err
	}
	return c, s.convFeed(tx, &was, &c, "")
}

// itemSummary is how the listing shows an item: a comment with its author.
func itemSummary(ev *Event) string {
	if ev.Kind == KindComment {
		return summary(ev.User + ": " + ev.Text)
	}
	return summary(ev.Text)
}

// appendActivity adds an opening or state change; it does not move the
// conversation up the listing.
func (s *Store) appendActivity(tx *bolt.Tx, c *Conversation, ev *Event) error {
	ev.Conv, ev.Number = c.ID, c.Number
	if err := putEvent(tx, ev); err != nil {
		return err
	}
	old := *c
	c.LastEvent = max(c.LastEvent, ev.ID)
	return putConv(tx, &old, c)
}

func putEvent(tx *bolt.Tx, ev *Event) error {
	v, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketEvents).Put([]byte(ev.Conv+ev.ID), v); err != nil {
		return err
	}
	return tx.Bucket(bucketEventNumber).Put([]byte(ev.Number+"\x00"+ev.ID), []byte(ev.Conv))
}

func numberKey(c *Conversation) []byte {
	return []byte(c.Number + "\x00" + c.LastItem + c.ID)
}

func stateKey(c *Conversation) []byte {
	return []byte(c.Number + "\x00" + c.State + "\x00" + c.LastItem + c.ID)
}

// putConv writes c and moves its index entries from where old had them.
func putConv(tx *bolt.Tx, old, c *Conversation) error {
	if old.LastItem != "" {
		if err := tx.Bucket(bucketConvNumber).Delete(numberKey(old)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketConvState).Delete(stateKey(old)); err != nil {
			return err
		}
	}
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketConv).Put([]byte(c.ID), v); err != nil {
		return err
	}
	if err := tx.Bucket(bucketConvNumber).Put(numberKey(c), nil); err != nil {
		return err
	}
	return tx.Bucket(bucketConvState).Put(stateKey(c), nil)
}

func getConv(tx *bolt.Tx, id string) (Conversation, error) {
	var c Conversation
	v := tx.Bucket(bucketConv).Get([]byte(id))
	if v == nil {
		return c, fmt.Errorf("%w: no conversation %q", ErrNotFound, id)
	}
	return c, json.Unmarshal(v, &c)
}

// Conversation returns one conversation.
func (s *Store) Conversation(id string) (Conversation, error) {
	var c Conversation
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		c, err = getConv(tx, id)
		return err
	})
	return c, err
}

// ItemConversation finds the conversation an item (call, voicemail,
// message or comment id) belongs to.
func (s *Store) ItemConversation(item string) (Conversation, error) {
	var c Conversation
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketItems).Get([]byte(item))
		if id == nil {
			return fmt.Errorf("%w: no item %q", ErrNotFound, item)
		}
		var err error
		c, err = getConv(tx, string(id))
		return err
	})
	return c, err
}

// Conversations lists the numbers' conversations, the one with the newest
// item first, in one state or ("") all, at most limit (0: 50).
func (s *Store) Conversations(numbers []string, state string, limit int) ([]Conversation, error) {
	if limit <= 0 {
		limit = 50
	}
	out := []Conversation{}
	err := s.db.View(func(tx *bolt.Tx) error {
		bucket := bucketConvNumber
		if state != "" {
			bucket = bucketConvState
		}
		type hit struct{ item, conv string }
		var hits []hit
		for _, n := range numbers {
			prefix := n + "\x00"
			if state != "" {
				prefix += state + "\x00"
			}
			got := 0
			walkBack(tx.Bucket(bucket).Cursor(), []byte(prefix), func(k, _ []byte) bool {
				rest := string(k[len(prefix):])
				if len(rest) < 32 {
					return true
				}
				hits = append(hits, hit{rest[:len(rest)-32], rest[len(rest)-32:]})
				got++
				return got < limit
			})
		}
		// Newest item first across the numbers.
		for i := 1; i < len(hits); i++ {
			for j := i; j > 0 && hits[j].item > hits[j-1].item; j-- {
				hits[j], hits[j-1] = hits[j-1], hits[j]
			}
		}
		if len(hits) > limit {
			hits = hits[:limit]
		}
		for _, h := range hits {
			c, err := getConv(tx, h.conv)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// walkBack visits the keys with prefix from the last down, while f says so.
func walkBack(c *bolt.Cursor, prefix []byte, f func(k, v []byte) bool) {
	end := append(bytes.Clone(prefix), 0xff)
	k, v := c.Seek(end)
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		if !f(k, v) {
			return
		}
	}
}

// Timeline returns a conversation's newest limit events (0: 200), in time
// order.
func (s *Store) Timeline(conv string, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 200
	}
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		if _, err := getConv(tx, conv); err != nil {
			return err
		}
		var err error
		walkBack(tx.Bucket(bucketEvents).Cursor(), []byte(conv), func(k, v []byte) bool {
			var ev Event
			if err = json.Unmarshal(v, &ev); err != nil {
				return false
			}
			out = append(out, ev)
			return len(out) < limit
		})
		return err
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if out == nil {
		out = []Event{}
	}
	return out, err
}

// Openings lists every opening of a conversation, oldest first.
func (s *Store) Openings(conv string) ([]Event, error) {
	out := []Event{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		prefix := []byte(conv)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if !bytes.Contains(v, []byte(`"kind":"opened"`)) {
				continue
			}
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			if ev.Kind == KindOpened {
				out = append(out, ev)
			}
		}
		return nil
	})
	return out, err
}

// Items returns a number's newest limit events (0: 50) across its
// conversations, newest first: a reverse walk of the number's index, so
// its cost follows limit, not the size of the history.
func (s *Store) Items(number string, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 50
	}
	out := make([]Event, 0, limit)
	err := s.db.View(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		prefix := []byte(number + "\x00")
		var err error
		key := make([]byte, 0, 64)
		walkBack(tx.Bucket(bucketEventNumber).Cursor(), prefix, func(k, conv []byte) bool {
			key = append(append(key[:0], conv...), k[len(prefix):]...)
			var ev Event
			if err = json.Unmarshal(events.Get(key), &ev); err != nil {
				return false
			}
			out = append(out, ev)
			return len(out) < limit
		})
		return err
	})
	return out, err
}

// Open records that user opened the conversation: an opening in its
// timeline, their read marker at its newest event, and unread becomes open.
func (s *Store) Open(conv, user string) (Conversation, error) {
	ev := Event{ID: s.NewID(), Kind: KindOpened, At: s.now().UTC(), User: user}
	var c Conversation
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if c, err = getConv(tx, conv); err != nil {
			return err
		}
		old := c
		if c.State == StateUnread {
			c.State = StateOpen
			if err := putConv(tx, &old, &c); err != nil {
				return err
			}
		}
		if err := s.appendActivity(tx, &c, &ev); err != nil {
			return err
		}
		if err := tx.Bucket(bucketConvRead).Put([]byte(conv+"\x00"+user), []byte(ev.ID)); err != nil {
			return err
		}
		d := ConversationData{Conversation: c.ID, Party: c.Party, Change: ChangeOpened, State: c.State, User: user}
		if old.State != c.State {
			d.PreviousState = old.State
		}
		return s.emit(tx, EventConversationUpdated, c.Number, c.ID, "", d)
	})
	return c, err
}

// SetState sets the conversation's state by hand; the change is in the
// timeline with who made it. Setting the state it has changes nothing.
func (s *Store) SetState(conv, user, state string) (Conversation, error) {
	if !ValidState(state) {
		return Conversation{}, fmt.Errorf("%w: state %q: use open, unread or done", ErrInvalid, state)
	}
	ev := Event{ID: s.NewID(), Kind: KindState, At: s.now().UTC(), User: user, State: state}
	var c Conversation
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if c, err = getConv(tx, conv); err != nil {
			return err
		}
		if c.State == state {
			return nil
		}
		old := c
		c.State = state
		if err := putConv(tx, &old, &c); err != nil {
			return err
		}
		if err := s.appendActivity(tx, &c, &ev); err != nil {
			return err
		}
		return s.emit(tx, EventConversationUpdated, c.Number, c.ID, "", ConversationData{Conversation: c.ID, Party: c.Party,
			Change: ChangeState, State: state, PreviousState: old.State, User: user})
	})
	return c, err
}

// Unread reports whether user has not opened the conversation since its
// newest inbound item (their own read marker).
func (s *Store) Unread(c Conversation, user string) bool {
	if c.LastInbound == "" {
		return false
	}
	var marker []byte
	s.db.View(func(tx *bolt.Tx) error {
		marker = bytes.Clone(tx.Bucket(bucketConvRead).Get([]byte(c.ID + "\x00" + user)))
		return nil
	})
	return string(marker) < c.LastInbound
}

// ReadMarker is the newest event user had seen when they last opened the
// conversation ("" when never).
func (s *Store) ReadMarker(conv, user string) string {
	var marker string
	s.db.View(func(tx *bolt.Tx) error {
		marker = string(tx.Bucket(bucketConvRead).Get([]byte(conv + "\x00" + user)))
		return nil
	})
	return marker
}

// MaxComment is the longest comment, in bytes.
const MaxComment = 4000

// Comment attaches user's comment to an item (call, voicemail, message) or
// answers a comment, in the item's conversation; a reply joins the thread
// of the comment it answers.
func (s *Store) Comment(item, user, text string) (Event, error) {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > MaxComment || !utf8.ValidString(text) || strings.ContainsRune(text, 0) {
		return Event{}, fmt.Errorf("%w: a comment is 1 to %d bytes of text", ErrInvalid, MaxComment)
	}
	ev := Event{ID: s.NewID(), Kind: KindComment, At: s.now().UTC(), User: user, Text: text, Parent: item}
	err := s.db.Update(func(tx *bolt.Tx) error {
		conv := tx.Bucket(bucketItems).Get([]byte(item))
		if conv == nil {
			return fmt.Errorf("%w: no item %q", ErrNotFound, item)
		}
		c, err := getConv(tx, string(conv))
		if err != nil {
			return err
		}
		ev.Thread = item
		// A reply: find the comment it answers for its thread.
		cur := tx.Bucket(bucketEvents).Cursor()
		if k, v := cur.Seek([]byte(c.ID + item)); k != nil && string(k) == c.ID+item {
			var parent Event
			if err := json.Unmarshal(v, &parent); err != nil {
				return err
			}
			if parent.Kind == KindComment {
				ev.Thread = parent.Thread
			}
		}
		_, err = s.appendItem(tx, c.Number, c.Party, "", &ev, func(c *Conversation) error {
			return s.emit(tx, EventCommentCreated, c.Number, c.ID, ev.ID, CommentData{CommentID: ev.ID, Conversation: c.ID,
				Parent: ev.Parent, Thread: ev.Thread, User: ev.User, Text: ev.Text, At: ev.At})
		})
		return err
	})
	return ev, err
}

// Entry is a timeline event with the record it refers to.
type Entry struct {
	Event
	Call      *Call      `json:"call,omitempty"`
	Voicemail *Voicemail `json:"voicemail,omitempty"`
	Message   *Message   `json:"message,omitempty"`
}

// Resolve joins each event to its call, voicemail or message record (one
// deleted since stays without).
func (s *Store) Resolve(evs []Event) ([]Entry, error) {
	out := make([]Entry, 0, len(evs))
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, ev := range evs {
			e := Entry{Event: ev}
			var dst any
			var b []byte
			switch ev.Kind {
			case KindCall:
				e.Call = &Call{}
				dst, b = e.Call, bucketCalls
			case KindVoicemail:
				e.Voicemail = &Voicemail{}
				dst, b = e.Voicemail, bucketVoicemail
			case KindMessage:
				e.Message = &Message{}
				dst, b = e.Message, bucketMessages
			}
			if dst != nil {
				raw := tx.Bucket(b).Get([]byte(ev.Ref))
				if raw == nil {
					e.Call, e.Voicemail, e.Message = nil, nil, nil
				} else if err := json.Unmarshal(raw, dst); err != nil {
					return fmt.Errorf("%s %s: %w", ev.Kind, ev.Ref, err)
				}
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
