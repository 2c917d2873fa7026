package inbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ErrInconsistent: Check found an index, a timeline or a counter that
// disagrees with the records.
var ErrInconsistent = errors.New("inbox inconsistent")

// maxProblems bounds how many inconsistencies Check names.
const maxProblems = 20

// Check verifies the invariants of doc.go over the whole inbox, in one
// read transaction: every index entry names an existing record of the
// right kind and number, every record is in each index it belongs to,
// every item is in exactly one timeline, and each conversation's counters
// and markers agree with its timeline. It returns nil, or an error wrapping
// ErrInconsistent that names the problems in the order found (at most 20,
// then how many more). It reads every record: for tests and repairs, not
// for a request path.
func (s *Store) Check() error {
	c := &checker{}
	if err := s.db.View(c.run); err != nil {
		return err
	}
	if len(c.problems) == 0 {
		return nil
	}
	msg := strings.Join(c.problems, "; ")
	if c.more > 0 {
		msg += fmt.Sprintf("; and %d more", c.more)
	}
	return fmt.Errorf("%w: %s", ErrInconsistent, msg)
}

type checker struct {
	problems []string
	more     int

	tx    *bolt.Tx
	calls map[string]Call
	vms   map[string]Voicemail
	msgs  map[string]Message
	convs map[string]Conversation
}

func (c *checker) fail(format string, args ...any) {
	if len(c.problems) < maxProblems {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	} else {
		c.more++
	}
}

// each visits a bucket's keys in order.
func (c *checker) each(name []byte, f func(k, v []byte)) {
	c.tx.Bucket(name).ForEach(func(k, v []byte) error {
		f(k, v)
		return nil
	})
}

// has reports whether key is in the bucket (also when its value is empty,
// which Get cannot tell from absent).
func (c *checker) has(name, key []byte) bool {
	k, _ := c.tx.Bucket(name).Cursor().Seek(key)
	return k != nil && bytes.Equal(k, key)
}

// decode reads a record whose id must be its key.
func (c *checker) decode(what string, k, v []byte, dst any, id func() string) bool {
	if err := json.Unmarshal(v, dst); err != nil {
		c.fail("%s %q does not decode: %v", what, k, err)
		return false
	}
	if got := id(); got != string(k) {
		c.fail("%s stored under %q has id %q", what, k, got)
		return false
	}
	return true
}

// splitLast cuts an index key "prefix \0 id" at its last NUL.
func splitLast(k []byte) (prefix, id string, ok bool) {
	i := bytes.LastIndexByte(k, 0)
	if i < 0 {
		return "", "", false
	}
	return string(k[:i]), string(k[i+1:]), true
}

func (c *checker) run(tx *bolt.Tx) error {
	c.tx = tx
	for _, b := range [][]byte{bucketCalls, bucketCallsNumber, bucketVoicemail, bucketVoicemailAudio,
		bucketVoicemailNumber, bucketGreetings, bucketContacts, bucketContactsPhone, bucketMessages,
		bucketMessageKeys, bucketConv, bucketConvParty, bucketConvNumber, bucketConvState, bucketConvRead,
		bucketEvents, bucketEventNumber, bucketItems, bucketFeed} {
		if tx.Bucket(b) == nil {
			c.fail("bucket %s is missing", b)
		}
	}
	if len(c.problems) > 0 {
		return nil
	}
	c.checkCalls()
	c.checkVoicemail()
	c.checkMessages()
	c.checkContacts()
	c.checkConversations()
	c.checkTimelines()
	c.checkFeed()
	return nil
}

// checkFeed: each feed event is keyed by its sequence number, which the
// bucket's sequence has reached; its type is known and its data an object;
// its conversation exists, of its number, and its item is an item of that
// conversation.
func (c *checker) checkFeed() {
	b := c.tx.Bucket(bucketFeed)
	top := b.Sequence()
	items := c.tx.Bucket(bucketItems)
	c.each(bucketFeed, func(k, v []byte) {
		var e FeedEvent
		if err := json.Unmarshal(v, &e); err != nil {
			c.fail("feed event %x does not decode: %v", k, err)
			return
		}
		if !bytes.Equal(k, feedKey(e.Seq)) {
			c.fail("feed event stored under %x has seq %d", k, e.Seq)
			return
		}
		if e.Seq > top {
			c.fail("feed event %d is past the feed's sequence %d", e.Seq, top)
		}
		if !ValidFeedType(e.Type) {
			c.fail("feed event %d has type %q", e.Seq, e.Type)
		}
		var data map[string]any
		if json.Unmarshal(e.Data, &data) != nil || data == nil {
			c.fail("feed event %d's data is not an object", e.Seq)
		}
		if e.Number == "" {
			c.fail("feed event %d has no number", e.Seq)
		}
		if e.Conv == "" {
			return
		}
		if cv, ok := c.convs[e.Conv]; !ok {
			c.fail("feed event %d names conversation %s, which does not exist", e.Seq, e.Conv)
		} else if cv.Number != e.Number {
			c.fail("feed event %d of %s names conversation %s of %s", e.Seq, e.Number, cv.ID, cv.Number)
		}
		if e.Item != "" {
			if got := items.Get([]byte(e.Item)); string(got) != e.Conv {
				c.fail("feed event %d's item %s is of conversation %q, not %s", e.Seq, e.Item, got, e.Conv)
			}
		}
	})
}

// checkCalls: each call is in the number index; each entry of it is a call
// of that number.
func (c *checker) checkCalls() {
	c.calls = map[string]Call{}
	c.each(bucketCalls, func(k, v []byte) {
		var r Call
		if !c.decode("call", k, v, &r, func() string { return r.ID }) {
			return
		}
		c.calls[r.ID] = r
		if !c.has(bucketCallsNumber, []byte(r.Number+"\x00"+r.ID)) {
			c.fail("call %s of %s is missing from the number index", r.ID, r.Number)
		}
	})
	c.each(bucketCallsNumber, func(k, _ []byte) {
		number, id, ok := splitLast(k)
		if r, found := c.calls[id]; !ok || !found {
			c.fail("call index entry %q names no call", k)
		} else if r.Number != number {
			c.fail("call index entry %q: call %s is of %s", k, id, r.Number)
		}
	})
}

// checkVoicemail: each message has its audio and its number index entry,
// and the call it ended; audio and index entries belong to a message.
func (c *checker) checkVoicemail() {
	c.vms = map[string]Voicemail{}
	c.each(bucketVoicemail, func(k, v []byte) {
		var m Voicemail
		if !c.decode("voicemail", k, v, &m, func() string { return m.ID }) {
			return
		}
		c.vms[m.ID] = m
		if len(c.tx.Bucket(bucketVoicemailAudio).Get(k)) == 0 {
			c.fail("voicemail %s has no audio", m.ID)
		}
		if !c.has(bucketVoicemailNumber, []byte(m.Number+"\x00"+m.ID)) {
			c.fail("voicemail %s of %s is missing from the number index", m.ID, m.Number)
		}
		if m.CallID != "" {
			if r, ok := c.calls[m.CallID]; !ok {
				c.fail("voicemail %s ended call %s, which does not exist", m.ID, m.CallID)
			} else if r.Number != m.Number {
				c.fail("voicemail %s of %s ended call %s of %s", m.ID, m.Number, r.ID, r.Number)
			}
		}
	})
	c.each(bucketVoicemailAudio, func(k, _ []byte) {
		if _, ok := c.vms[string(k)]; !ok {
			c.fail("voicemail audio %q belongs to no voicemail", k)
		}
	})
	c.each(bucketVoicemailNumber, func(k, _ []byte) {
		number, id, ok := splitLast(k)
		if m, found := c.vms[id]; !ok || !found {
			c.fail("voicemail index entry %q names no voicemail", k)
		} else if m.Number != number {
			c.fail("voicemail index entry %q: voicemail %s is of %s", k, id, m.Number)
		}
	})
}

// checkMessages: a text with a key is in the key index under it; each key
// names the text that carries it.
func (c *checker) checkMessages() {
	c.msgs = map[string]Message{}
	keys := c.tx.Bucket(bucketMessageKeys)
	c.each(bucketMessages, func(k, v []byte) {
		var m Message
		if !c.decode("message", k, v, &m, func() string { return m.ID }) {
			return
		}
		c.msgs[m.ID] = m
		if m.Key != "" {
			if got := keys.Get([]byte(m.Key)); string(got) != m.ID {
				c.fail("message %s's key %q is indexed to %q", m.ID, m.Key, got)
			}
		}
	})
	c.each(bucketMessageKeys, func(k, v []byte) {
		if m, ok := c.msgs[string(v)]; !ok {
			c.fail("message key %q names message %q, which does not exist", k, v)
		} else if m.Key != string(k) {
			c.fail("message key %q names message %s, whose key is %q", k, v, m.Key)
		}
	})
}

// checkContacts: each phone of a contact is indexed to it; each indexed
// phone is its contact's.
func (c *checker) checkContacts() {
	contacts := map[string]Contact{}
	phones := c.tx.Bucket(bucketContactsPhone)
	c.each(bucketContacts, func(k, v []byte) {
		var ct Contact
		if !c.decode("contact", k, v, &ct, func() string { return ct.ID }) {
			return
		}
		contacts[ct.ID] = ct
		for _, p := range ct.Phones {
			if got := phones.Get([]byte(p)); string(got) != ct.ID {
				c.fail("contact %s's phone %s is indexed to %q", ct.ID, p, got)
			}
		}
	})
	c.each(bucketContactsPhone, func(k, v []byte) {
		if ct, ok := contacts[string(v)]; !ok {
			c.fail("phone %s names contact %q, which does not exist", k, v)
		} else if !slices.Contains(ct.Phones, string(k)) {
			c.fail("phone %s names contact %s, who does not have it", k, v)
		}
	})
}

// checkConversations: each conversation is in the party, number and state
// indexes under its current keys, and those indexes hold nothing else.
func (c *checker) checkConversations() {
	c.convs = map[string]Conversation{}
	party := c.tx.Bucket(bucketConvParty)
	c.each(bucketConv, func(k, v []byte) {
		var cv Conversation
		if !c.decode("conversation", k, v, &cv, func() string { return cv.ID }) {
			return
		}
		c.convs[cv.ID] = cv
		if !ValidState(cv.State) {
			c.fail("conversation %s has state %q", cv.ID, cv.State)
		}
		if got := party.Get([]byte(cv.Number + "\x00" + cv.Party)); string(got) != cv.ID {
			c.fail("conversation %s (%s with %s) is indexed by party to %q", cv.ID, cv.Number, cv.Party, got)
		}
		if !c.has(bucketConvNumber, numberKey(&cv)) {
			c.fail("conversation %s is missing from the number index under its last item %s", cv.ID, cv.LastItem)
		}
		if !c.has(bucketConvState, stateKey(&cv)) {
			c.fail("conversation %s is missing from the state index as %s", cv.ID, cv.State)
		}
	})
	c.each(bucketConvParty, func(k, v []byte) {
		if cv, ok := c.convs[string(v)]; !ok {
			c.fail("party index entry %q names conversation %q, which does not exist", k, v)
		} else if cv.Number+"\x00"+cv.Party != string(k) {
			c.fail("party index entry %q names conversation %s, of %s with %s", k, v, cv.Number, cv.Party)
		}
	})
	for _, idx := range []struct {
		name []byte
		key  func(*Conversation) []byte
	}{{bucketConvNumber, numberKey}, {bucketConvState, stateKey}} {
		c.each(idx.name, func(k, _ []byte) {
			id := ""
			if len(k) >= 32 {
				id = string(k[len(k)-32:])
			}
			if cv, ok := c.convs[id]; !ok {
				c.fail("%s entry %q names no conversation", idx.name, k)
			} else if !bytes.Equal(idx.key(&cv), k) {
				c.fail("%s entry %q is stale: conversation %s is now under %q", idx.name, k, id, idx.key(&cv))
			}
		})
	}
}

// tally is what a conversation's timeline says its counters should be.
type tally struct {
	items                int
	lastItem             Event
	lastInbound, lastEvt string
}

// checkTimelines walks every event: each is keyed by its conversation and
// id, in the number's event index, an item at most once, indexed to its
// conversation and of a record of that number and party; then the item
// index and read markers against the timelines, every record is an item,
// and each conversation's counters against its tally.
func (c *checker) checkTimelines() {
	events, byNumber, items := c.tx.Bucket(bucketEvents), c.tx.Bucket(bucketEventNumber), c.tx.Bucket(bucketItems)
	tallies := map[string]*tally{}
	itemConv := map[string]string{} // item id → the conversation whose timeline has it
	c.each(bucketEvents, func(k, v []byte) {
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			c.fail("event %q does not decode: %v", k, err)
			return
		}
		if string(k) != ev.Conv+ev.ID {
			c.fail("event stored under %q is event %s of conversation %s", k, ev.ID, ev.Conv)
			return
		}
		cv, ok := c.convs[ev.Conv]
		if !ok {
			c.fail("event %s is in conversation %s, which does not exist", ev.ID, ev.Conv)
			return
		}
		if ev.Number != cv.Number {
			c.fail("event %s of conversation %s (%s) names number %s", ev.ID, cv.ID, cv.Number, ev.Number)
		}
		if got := byNumber.Get([]byte(ev.Number + "\x00" + ev.ID)); string(got) != ev.Conv {
			c.fail("event %s of conversation %s is indexed by number to %q", ev.ID, ev.Conv, got)
		}
		t := tallies[ev.Conv]
		if t == nil {
			t = &tally{}
			tallies[ev.Conv] = t
		}
		t.lastEvt = max(t.lastEvt, ev.ID)
		switch ev.Kind {
		case KindCall, KindVoicemail, KindMessage, KindComment:
		case KindOpened, KindState:
			if ev.Kind == KindState && !ValidState(ev.State) {
				c.fail("state event %s of conversation %s sets state %q", ev.ID, ev.Conv, ev.State)
			}
			return
		default:
			c.fail("event %s of conversation %s has kind %q", ev.ID, ev.Conv, ev.Kind)
			return
		}
		item := ev.Item()
		if other, dup := itemConv[item]; dup {
			c.fail("item %s is in the timeline of conversation %s and again in %s", item, other, ev.Conv)
		}
		itemConv[item] = ev.Conv
		if got := items.Get([]byte(item)); string(got) != ev.Conv {
			c.fail("item %s of conversation %s is indexed to conversation %q", item, ev.Conv, got)
		}
		t.items++
		if ev.ID > t.lastItem.ID {
			t.lastItem = ev
		}
		if ev.Inbound {
			t.lastInbound = max(t.lastInbound, ev.ID)
		}
		c.checkItemRecord(&ev, &cv)
	})
	c.each(bucketEventNumber, func(k, v []byte) {
		number, id, ok := splitLast(k)
		raw := events.Get([]byte(string(v) + id))
		var ev Event
		if !ok || raw == nil || json.Unmarshal(raw, &ev) != nil {
			c.fail("event index entry %q names no event of conversation %q", k, v)
		} else if ev.Number != number {
			c.fail("event index entry %q: event %s is of %s", k, id, ev.Number)
		}
	})
	c.each(bucketItems, func(k, v []byte) {
		if _, ok := c.convs[string(v)]; !ok {
			c.fail("item %s is indexed to conversation %q, which does not exist", k, v)
		} else if itemConv[string(k)] != string(v) {
			c.fail("item %s is indexed to conversation %s, whose timeline does not have it", k, v)
		}
	})
	c.each(bucketConvRead, func(k, v []byte) {
		conv, user, _ := bytes.Cut(k, []byte{0})
		var ev Event
		raw := events.Get(append(bytes.Clone(conv), v...))
		if raw == nil || json.Unmarshal(raw, &ev) != nil {
			c.fail("read marker %q names event %q, not in that conversation", k, v)
		} else if ev.Kind != KindOpened || ev.User != string(user) {
			c.fail("read marker %q names event %s, which is not %s's opening", k, v, user)
		}
	})
	// Every record is an item (calls without a number excepted: a file
	// from before conversations never gave them one).
	c.each(bucketCalls, func(k, _ []byte) {
		if r, ok := c.calls[string(k)]; ok && r.Number != "" && itemConv[r.ID] == "" {
			c.fail("call %s is in no timeline", r.ID)
		}
	})
	c.each(bucketVoicemail, func(k, _ []byte) {
		if _, ok := c.vms[string(k)]; ok && itemConv[string(k)] == "" {
			c.fail("voicemail %s is in no timeline", k)
		}
	})
	c.each(bucketMessages, func(k, _ []byte) {
		if _, ok := c.msgs[string(k)]; ok && itemConv[string(k)] == "" {
			c.fail("message %s is in no timeline", k)
		}
	})
	c.each(bucketConv, func(k, _ []byte) {
		cv, ok := c.convs[string(k)]
		if !ok {
			return
		}
		t := tallies[cv.ID]
		if t == nil {
			t = &tally{}
		}
		if cv.Items != t.items {
			c.fail("conversation %s counts %d items, its timeline has %d", cv.ID, cv.Items, t.items)
		}
		if cv.LastItem != t.lastItem.ID {
			c.fail("conversation %s's last item is %q, its timeline's newest item %q", cv.ID, cv.LastItem, t.lastItem.ID)
		} else if !cv.LastAt.Equal(t.lastItem.At) || cv.LastKind != t.lastItem.Kind || cv.LastSummary != itemSummary(&t.lastItem) {
			c.fail("conversation %s's last time, kind or summary (%s, %s, %q) are not its last item's", cv.ID, cv.LastAt, cv.LastKind, cv.LastSummary)
		}
		if cv.LastInbound != t.lastInbound {
			c.fail("conversation %s's last inbound item is %q, its timeline's newest %q", cv.ID, cv.LastInbound, t.lastInbound)
		}
		if cv.LastEvent != t.lastEvt {
			c.fail("conversation %s's last event is %q, its timeline's newest %q", cv.ID, cv.LastEvent, t.lastEvt)
		}
	})
}

// checkItemRecord: a call or message item's record exists (a voicemail's
// may have been deleted since), of the conversation's number and party and
// direction; a comment answers an item of its own conversation.
func (c *checker) checkItemRecord(ev *Event, cv *Conversation) {
	var number, party string
	var inbound bool
	switch ev.Kind {
	case KindCall:
		r, ok := c.calls[ev.Ref]
		if !ok {
			c.fail("call event %s of conversation %s names call %q, which does not exist", ev.ID, cv.ID, ev.Ref)
			return
		}
		number, party, inbound = r.Number, Party(r.Remote), r.Direction == "inbound"
	case KindVoicemail:
		m, ok := c.vms[ev.Ref]
		if !ok {
			return // deleted
		}
		number, party, inbound = m.Number, Party(m.From), true
	case KindMessage:
		m, ok := c.msgs[ev.Ref]
		if !ok {
			c.fail("message event %s of conversation %s names message %q, which does not exist", ev.ID, cv.ID, ev.Ref)
			return
		}
		number, party, inbound = m.Number, m.Party, m.Direction == "inbound"
	case KindComment:
		if ev.Ref != "" {
			c.fail("comment %s of conversation %s refers to %q", ev.ID, cv.ID, ev.Ref)
		}
		items := c.tx.Bucket(bucketItems)
		for _, id := range []string{ev.Parent, ev.Thread} {
			if got := items.Get([]byte(id)); string(got) != cv.ID {
				c.fail("comment %s of conversation %s answers item %q, which is in conversation %q", ev.ID, cv.ID, id, got)
			}
		}
		return
	}
	if number != cv.Number || party != cv.Party {
		c.fail("%s %s (%s with %s) is in conversation %s (%s with %s)", ev.Kind, ev.Ref, number, party, cv.ID, cv.Number, cv.Party)
	}
	if inbound != ev.Inbound {
		c.fail("%s %s's event %s says inbound %v, the record %v", ev.Kind, ev.Ref, ev.ID, ev.Inbound, inbound)
	}
}
