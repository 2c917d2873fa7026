package inbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clockStore is a store whose clock the test moves; the test's cleanup
// checks it (checkAfter).
func clockStore(t testing.TB) (*Store, *time.Time) {
	t.Helper()
	s, now := uncheckedStore(t)
	checkAfter(t, s)
	return s, now
}

// uncheckedStore is clockStore without the final Check, for a test that
// breaks the store on purpose.
func uncheckedStore(t testing.TB) (*Store, *time.Time) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "i.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	s, err := Open(db, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return s, &now
}

func inboundText(s *Store, number, party, text string) *Message {
	return &Message{ID: s.NewID(), Number: number, Party: party, Direction: "inbound", Text: text,
		ContentType: "text/plain", At: s.now(), Status: MsgReceived}
}

func TestConversationTimelineAndStates(t *testing.T) {
	s, now := clockStore(t)
	const num, party = "+15551230001", "+15557654321"

	call := &Call{ID: s.NewID(), Number: num, Direction: "inbound", Remote: "15557654321", StartedAt: *now, Disposition: Ringing}
	if err := s.PutCall(call); err != nil {
		t.Fatal(err)
	}
	call.Disposition = Answered
	if err := s.PutCall(call); err != nil { // a later step of the same call: no second item
		t.Fatal(err)
	}
	convs, err := s.Conversations([]string{num}, "", 0)
	if err != nil || len(convs) != 1 {
		t.Fatalf("conversations = %v, %v; want one", convs, err)
	}
	c := convs[0]
	if c.Party != party || c.State != StateUnread || c.Items != 1 || c.LastKind != KindCall {
		t.Fatalf("after an inbound call: %+v", c)
	}
	if !s.Unread(c, "ann") || !s.Unread(c, "ben") {
		t.Fatal("a new inbound item is unread for everyone")
	}

	// ann opens it: team state open, ann's marker moves, ben's does not.
	*now = now.Add(time.Minute)
	if c, err = s.Open(c.ID, "ann"); err != nil || c.State != StateOpen {
		t.Fatalf("open: %+v, %v", c, err)
	}
	if s.Unread(c, "ann") || !s.Unread(c, "ben") {
		t.Fatal("read markers are per user")
	}

	// done, then an inbound text reopens it as unread.
	if c, err = s.SetState(c.ID, "ben", StateDone); err != nil || c.State != StateDone {
		t.Fatalf("done: %+v, %v", c, err)
	}
	if got, _ := s.Conversations([]string{num}, StateDone, 0); len(got) != 1 {
		t.Fatalf("done listing = %v", got)
	}
	*now = now.Add(time.Minute)
	if err := s.SaveMessage(inboundText(s, num, party, "are you open today?")); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Conversation(c.ID)
	if c.State != StateUnread || c.Items != 2 || c.LastSummary != "are you open today?" {
		t.Fatalf("after an inbound text on a done conversation: %+v", c)
	}
	if got, _ := s.Conversations([]string{num}, StateDone, 0); len(got) != 0 {
		t.Fatalf("still listed as done: %v", got)
	}
	if !s.Unread(c, "ann") {
		t.Fatal("ann has not seen the new text")
	}

	// An outbound text neither reopens nor makes unread.
	if _, err := s.SetState(c.ID, "ann", StateDone); err != nil {
		t.Fatal(err)
	}
	out := &Message{ID: s.NewID(), Number: num, Party: party, Direction: "outbound", Member: "ann", Text: "yes, till 6", At: *now, Status: MsgSending}
	if err := s.SaveMessage(out); err != nil {
		t.Fatal(err)
	}
	if c, _ = s.Conversation(c.ID); c.State != StateDone || c.Items != 3 {
		t.Fatalf("after an outbound text: %+v", c)
	}
	// Setting the state it has adds nothing.
	if _, err := s.SetState(c.ID, "ann", StateDone); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(c.ID, "ann", "archived"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad state: %v", err)
	}

	tl, err := s.Timeline(c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range tl {
		kinds = append(kinds, ev.Kind+":"+ev.User+ev.State)
	}
	want := []string{"call:", "opened:ann", "state:bendone", "message:", "state:anndone", "message:ann"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("timeline = %v, want %v", kinds, want)
	}
	entries, err := s.Resolve(tl)
	if err != nil || entries[0].Call == nil || entries[0].Call.Disposition != Answered || entries[5].Message == nil || entries[5].Message.Member != "ann" {
		t.Fatalf("resolve: %+v, %v", entries, err)
	}
}

func TestOpenedByTimeline(t *testing.T) {
	s, now := clockStore(t)
	const num = "+15551230001"
	if err := s.SaveMessage(inboundText(s, num, "+15557654321", "hi")); err != nil {
		t.Fatal(err)
	}
	convs, _ := s.Conversations([]string{num}, "", 0)
	id := convs[0].ID
	var want []string
	for i, u := range []string{"ann", "ben", "ann"} {
		*now = now.Add(time.Duration(i+1) * time.Minute)
		if _, err := s.Open(id, u); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%s@%s", u, now.Format(time.TimeOnly)))
	}
	opened, err := s.Openings(id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range opened {
		got = append(got, fmt.Sprintf("%s@%s", ev.User, ev.At.Format(time.TimeOnly)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("openings = %v, want %v", got, want)
	}
	if _, err := s.Open("nope", "ann"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("opening a missing conversation: %v", err)
	}
}

func TestCommentThreads(t *testing.T) {
	s, _ := clockStore(t)
	const num = "+15551230001"
	m := inboundText(s, num, "+15557654321", "my order is late")
	if err := s.SaveMessage(m); err != nil {
		t.Fatal(err)
	}
	first, err := s.Comment(m.ID, "ann", "I'll call them back")
	if err != nil || first.Thread != m.ID || first.Parent != m.ID {
		t.Fatalf("comment on the text: %+v, %v", first, err)
	}
	reply, err := s.Comment(first.ID, "ben", "thanks")
	if err != nil || reply.Thread != m.ID || reply.Parent != first.ID {
		t.Fatalf("reply: %+v, %v", reply, err)
	}
	if c, _ := s.ItemConversation(reply.ID); c.Party != "+15557654321" {
		t.Fatalf("a reply is an item of the same conversation: %+v", c)
	}
	for _, bad := range []string{"", "   ", string(make([]byte, MaxComment+1))} {
		if _, err := s.Comment(m.ID, "ann", bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("comment %q: %v", bad[:min(len(bad), 8)], err)
		}
	}
	if _, err := s.Comment("nope", "ann", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("comment on a missing item: %v", err)
	}
	// A comment is not inbound: the conversation stays as it was read.
	c, _ := s.ItemConversation(m.ID)
	if c.State != StateUnread || c.LastKind != KindComment || c.LastSummary != "ben: thanks" {
		t.Fatalf("conversation after comments: %+v", c)
	}
}

func TestItemsNewestFirstAcrossConversations(t *testing.T) {
	s, now := clockStore(t)
	const num, other = "+15551230001", "+15551230002"
	var want []string
	for i := range 30 {
		*now = now.Add(time.Second)
		m := inboundText(s, num, fmt.Sprintf("+1555000%04d", i%4), fmt.Sprint(i))
		if err := s.SaveMessage(m); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveMessage(inboundText(s, other, "+15550009999", "elsewhere")); err != nil {
			t.Fatal(err)
		}
		want = append([]string{m.ID}, want...)
	}
	items, err := s.Items(num, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range items {
		got = append(got, ev.Ref)
	}
	if !slices.Equal(got, want[:10]) {
		t.Fatalf("items = %v, want %v", got, want[:10])
	}
	convs, _ := s.Conversations([]string{num}, "", 2)
	if len(convs) != 2 || convs[0].Party != "+15550000001" || convs[1].Party != "+15550000000" {
		t.Fatalf("newest conversations: %+v", convs)
	}
	both, _ := s.Conversations([]string{num, other}, StateUnread, 0)
	if len(both) != 5 || both[0].Number != other {
		t.Fatalf("both numbers' unread: %d, first %+v", len(both), both[0])
	}
}

func TestParty(t *testing.T) {
	for in, want := range map[string]string{"+1 (555) 765-4321": "+15557654321", "15557654321": "+15557654321", "": "anonymous", "  ": "anonymous", "alice": "alice"} {
		if got := Party(in); got != want {
			t.Errorf("Party(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBackfillOldWorkspace: a data file written before conversations
// existed gets its calls and voicemail into conversations, in time order,
// once.
func TestBackfillOldWorkspace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	s, _ := Open(db, func() time.Time { return t0 })
	checkAfter(t, s)
	const num = "+15551230001"
	first := &Call{ID: s.NewID(), Number: num, Direction: "inbound", Remote: "+15557654321", StartedAt: t0, Disposition: Missed}
	second := &Call{ID: s.NewID(), Number: num, Direction: "inbound", Remote: "+15557654321", StartedAt: t0.Add(time.Hour), Disposition: WentToVoicemail}
	vm := &Voicemail{ID: s.NewID(), Number: num, From: "15557654321", ReceivedAt: t0.Add(time.Hour + time.Minute), DurationS: 4}
	other := &Call{ID: s.NewID(), Number: num, Direction: "outbound", Remote: "+15550001111", Member: "ann", StartedAt: t0.Add(30 * time.Minute), Disposition: Answered}
	for _, c := range []*Call{second, first, other} {
		if err := s.PutCall(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveVoicemail(vm, make([]byte, 1600), nil); err != nil {
		t.Fatal(err)
	}
	// As the file was before conversations: their buckets (and the feed) gone.
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketConv, bucketConvParty, bucketConvNumber, bucketConvState, bucketConvRead, bucketEvents, bucketEventNumber, bucketItems, bucketFeed} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the second Open must not add anything
		if s, err = Open(db, time.Now); err != nil {
			t.Fatal(err)
		}
		convs, err := s.Conversations([]string{num}, "", 0)
		if err != nil || len(convs) != 2 || convs[0].Party != "+15557654321" || convs[0].Items != 3 || convs[1].Items != 1 {
			t.Fatalf("round %d: conversations %+v, %v", round, convs, err)
		}
		tl, _ := s.Timeline(convs[0].ID, 0)
		var refs []string
		for _, ev := range tl {
			refs = append(refs, ev.Ref)
		}
		if !slices.Equal(refs, []string{first.ID, second.ID, vm.ID}) {
			t.Fatalf("round %d: timeline %v, want the first call, the second, the voicemail", round, refs)
		}
	}
	// New items come after the backfilled ones.
	if err := s.SaveMessage(inboundText(s, num, "+15557654321", "hello?")); err != nil {
		t.Fatal(err)
	}
	items, _ := s.Items(num, 1)
	if items[0].Kind != KindMessage {
		t.Fatalf("newest item: %+v", items[0])
	}
}
