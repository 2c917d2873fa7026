package inbox

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// feedTypes is the types of events, in order.
func feedTypes(evs []FeedEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// allFeed reads the whole feed in pages of 3, checking the numbering.
func allFeed(t *testing.T, s *Store) []FeedEvent {
	t.Helper()
	var out []FeedEvent
	var after uint64
	for {
		page, err := s.Feed(after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for _, e := range page {
			if e.Seq != after+1 {
				t.Fatalf("event %d after %d: a gap", e.Seq, after)
			}
			after = e.Seq
		}
		out = append(out, page...)
	}
}

// TestFeedEveryKind: each change the inbox records is one event, in the
// order committed, with its number, conversation, item and data.
func TestFeedEveryKind(t *testing.T) {
	s, now := clockStore(t)
	const num, party = "+15551230001", "+15557654321"
	step := func() { *now = now.Add(time.Second) }

	// An inbound call rings, is answered by ann, ends.
	call := &Call{ID: s.NewID(), Number: num, Direction: "inbound", Remote: party, StartedAt: *now, Disposition: Ringing, Branches: []Branch{}}
	must(t, s.PutCall(call))
	step()
	at := *now
	call.AnsweredAt, call.Disposition, call.AnsweredBy = &at, Answered, &Answerer{User: "ann", Contact: "sip:ann@192.0.2.1"}
	must(t, s.PutCall(call))
	must(t, s.PutCall(call)) // rewritten with no step: nothing
	step()
	end := *now
	call.EndedAt, call.DurationS = &end, 1
	must(t, s.PutCall(call))
	// A second call is written once, already over (coalesced writes):
	// all its steps, in order.
	missed := &Call{ID: s.NewID(), Number: num, Direction: "inbound", Remote: party, StartedAt: *now, EndedAt: &end, Disposition: Missed, Branches: []Branch{}}
	must(t, s.PutCall(missed))
	// A call that goes to voicemail.
	vc := &Call{ID: s.NewID(), Number: num, Direction: "inbound", Remote: party, StartedAt: *now, Disposition: Ringing, Branches: []Branch{}}
	must(t, s.PutCall(vc))
	vm := &Voicemail{ID: s.NewID(), Number: num, From: party, ReceivedAt: *now, DurationS: 4, CallID: vc.ID}
	vc.AnsweredAt, vc.EndedAt, vc.Disposition, vc.VoicemailID = &at, &end, WentToVoicemail, vm.ID
	must(t, s.SaveVoicemail(vm, []byte{1, 2}, vc))
	// Texts in and out; the one out is accepted by the trunk.
	in := inboundText(s, num, party, "are you open?")
	must(t, s.SaveMessage(in))
	in.Deliveries = []Delivery{{User: "ann", Contact: "sip:ann@192.0.2.1", Outcome: DeliveryDelivered, At: *now}}
	must(t, s.UpdateMessage(in)) // deliveries to phones: no event
	out := &Message{ID: s.NewID(), Number: num, Party: party, Direction: "outbound", Member: "ann", Text: "yes", At: *now, Status: MsgSending}
	must(t, s.SaveMessage(out))
	out.Status, out.StatusCode = MsgSent, 202
	must(t, s.UpdateMessage(out))
	bad := &Message{ID: s.NewID(), Number: num, Party: party, Direction: "outbound", Member: "ann", Text: "hello?", At: *now, Status: MsgSending}
	must(t, s.SaveMessage(bad))
	bad.Status, bad.StatusCode = MsgFailed, 408
	must(t, s.UpdateMessage(bad))
	// A comment, opened, done, and a text that reopens it.
	cm, err := s.Comment(in.ID, "ann", "I'll answer")
	must(t, err)
	conv, err := s.ItemConversation(in.ID)
	must(t, err)
	_, err = s.Open(conv.ID, "ben")
	must(t, err)
	_, err = s.SetState(conv.ID, "ben", StateDone)
	must(t, err)
	_, err = s.SetState(conv.ID, "ben", StateDone) // no change: nothing
	must(t, err)
	must(t, s.SaveMessage(inboundText(s, num, party, "hello again")))

	evs := allFeed(t, s)
	want := []string{
		EventCallRinging, EventConversationUpdated, // created, unread
		EventCallAnswered, EventCallCompleted,
		EventCallRinging, EventCallCompleted, // the missed call
		EventCallRinging, EventCallCompleted, EventVoicemailCreated,
		EventMessageReceived, EventMessageSent, EventMessageDelivered, EventMessageSent, EventMessageFailed,
		EventCommentCreated, EventConversationUpdated, EventConversationUpdated, // opened, done
		EventMessageReceived, EventConversationUpdated, // unread again
	}
	if got := feedTypes(evs); !slices.Equal(got, want) {
		t.Fatalf("feed\n got %v\nwant %v", got, want)
	}
	for _, e := range evs {
		if e.Number != num || e.Conv != conv.ID || !e.At.Equal(e.At.UTC()) {
			t.Errorf("event %d %s: number %s, conversation %s, at %s", e.Seq, e.Type, e.Number, e.Conv, e.At)
		}
	}
	data := func(i int, dst any) {
		t.Helper()
		if err := json.Unmarshal(evs[i].Data, dst); err != nil {
			t.Fatal(err)
		}
	}
	var cd CallData
	data(2, &cd)
	if evs[2].Item != call.ID || cd.CallID != call.ID || cd.AnsweredBy != "ann" || cd.Disposition != Answered || cd.Party != party || cd.Conversation != conv.ID {
		t.Errorf("call.answered: %s %+v", evs[2].Item, cd)
	}
	data(3, &cd)
	if cd.EndedAt == nil || cd.DurationS != 1 {
		t.Errorf("call.completed: %+v", cd)
	}
	var conv1 ConversationData
	data(1, &conv1)
	if conv1.Change != ChangeCreated || conv1.State != StateUnread || conv1.User != "" {
		t.Errorf("conversation created: %+v", conv1)
	}
	var vd VoicemailData
	data(8, &vd)
	if vd.VoicemailID != vm.ID || vd.CallID != vc.ID || vd.DurationS != 4 || evs[8].Item != vm.ID {
		t.Errorf("voicemail.created: %+v", vd)
	}
	var md MessageData
	data(9, &md)
	if md.MessageID != in.ID || md.Text != "are you open?" || md.Direction != "inbound" || md.Status != MsgReceived {
		t.Errorf("message.received: %+v", md)
	}
	data(11, &md)
	if md.MessageID != out.ID || md.Status != MsgSent || md.StatusCode != 202 || md.Member != "ann" {
		t.Errorf("message.delivered: %+v", md)
	}
	var cmd CommentData
	data(14, &cmd)
	if cmd.CommentID != cm.ID || evs[14].Item != cm.ID || cmd.Parent != in.ID || cmd.Thread != in.ID || cmd.User != "ann" || cmd.Text != "I'll answer" {
		t.Errorf("comment.created: %+v", cmd)
	}
	for i, w := range []ConversationData{
		{Conversation: conv.ID, Party: party, Change: ChangeOpened, State: StateOpen, PreviousState: StateUnread, User: "ben"},
		{Conversation: conv.ID, Party: party, Change: ChangeState, State: StateDone, PreviousState: StateOpen, User: "ben"},
		{Conversation: conv.ID, Party: party, Change: ChangeState, State: StateUnread, PreviousState: StateDone},
	} {
		var got ConversationData
		data([]int{15, 16, 18}[i], &got)
		if got != w {
			t.Errorf("conversation.updated %d: %+v, want %+v", i, got, w)
		}
	}
}

// TestFeedCloseInterrupted: calls a stopped server left open complete.
func TestFeedCloseInterrupted(t *testing.T) {
	s, now := clockStore(t)
	c := &Call{ID: s.NewID(), Number: "+15551230001", Direction: "inbound", Remote: "+15557654321", StartedAt: *now, Disposition: Ringing, Branches: []Branch{}}
	must(t, s.PutCall(c))
	if n, err := s.CloseInterrupted(now.Add(time.Minute), time.Hour); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	evs := allFeed(t, s)
	if got := feedTypes(evs); !slices.Equal(got, []string{EventCallRinging, EventConversationUpdated, EventCallCompleted}) {
		t.Fatalf("feed %v", got)
	}
	var cd CallData
	json.Unmarshal(evs[2].Data, &cd)
	if cd.Disposition != Missed || cd.EndedAt == nil {
		t.Fatalf("completed: %+v", cd)
	}
}

// TestFeedSurvivesReopen: the events and the numbering are in the file: a
// reopened store lists the same events and numbers on from the last one;
// a consumer resumes after the last sequence number it handled.
func TestFeedSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "i.db")
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	open := func() (*bolt.DB, *Store) {
		db, err := bolt.Open(path, 0o600, nil)
		must(t, err)
		s, err := Open(db, func() time.Time { return now })
		must(t, err)
		return db, s
	}
	db, s := open()
	for _, text := range []string{"one", "two", "three"} {
		must(t, s.SaveMessage(inboundText(s, "+15551230001", "+15557654321", text)))
	}
	before := allFeed(t, s)
	must(t, s.Check())
	must(t, db.Close())

	now = now.Add(time.Second) // ids are unique per process and instant
	db, s = open()
	t.Cleanup(func() { db.Close() })
	checkAfter(t, s)
	if after := allFeed(t, s); !slices.EqualFunc(before, after, func(a, b FeedEvent) bool {
		return a.Seq == b.Seq && a.Type == b.Type && string(a.Data) == string(b.Data)
	}) {
		t.Fatalf("after reopening\n%+v\nbefore\n%+v", after, before)
	}
	if seq, err := s.FeedSeq(); seq != 4 || err != nil {
		t.Fatalf("FeedSeq = %d, %v; want 4 (three texts, one conversation created)", seq, err)
	}
	must(t, s.SaveMessage(inboundText(s, "+15551230001", "+15557654321", "four")))
	// Resume after the last event handled before the restart.
	evs, err := s.Feed(4, 0)
	must(t, err)
	var md MessageData
	if len(evs) != 1 || evs[0].Seq != 5 || json.Unmarshal(evs[0].Data, &md) != nil || md.Text != "four" {
		t.Fatalf("Feed(4) = %+v", evs)
	}
	if evs, err := s.Feed(2, 2); err != nil || len(evs) != 2 || evs[0].Seq != 3 || evs[1].Seq != 4 {
		t.Fatalf("Feed(2, 2) = %+v, %v", evs, err)
	}
}

// TestFeedSubscribe: a subscriber is signalled after a commit that added
// events, not before; writes with no event and cancelled subscriptions
// are not signalled; a signal not yet read folds later ones.
func TestFeedSubscribe(t *testing.T) {
	s, _ := clockStore(t)
	ch, cancel := s.Subscribe()
	other, cancelOther := s.Subscribe()
	cancelOther()
	signalled := func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	if signalled() {
		t.Fatal("signalled before any write")
	}
	m := inboundText(s, "+15551230001", "+15557654321", "hi")
	must(t, s.SaveMessage(m))
	must(t, s.SaveMessage(inboundText(s, "+15551230001", "+15557654321", "again")))
	if !signalled() {
		t.Fatal("not signalled after a text")
	}
	if signalled() {
		t.Fatal("two signals for two commits not yet read: want them folded into one")
	}
	must(t, s.UpdateMessage(m)) // no status change: no event
	if _, err := s.AddContacts([]Contact{{Name: "Grace", Phones: []string{"+15550001111"}}}); err != nil {
		t.Fatal(err)
	}
	if signalled() {
		t.Fatal("signalled for writes that added no event")
	}
	select {
	case <-other:
		t.Fatal("a cancelled subscription was signalled")
	default:
	}
	// A failed write (an unknown conversation) signals nothing.
	if _, err := s.SetState("nope", "ann", StateDone); err == nil {
		t.Fatal("SetState of no conversation")
	}
	if signalled() {
		t.Fatal("signalled for a failed write")
	}
	cancel()
	must(t, s.SaveMessage(inboundText(s, "+15551230001", "+15557654321", "after cancel")))
	if signalled() {
		t.Fatal("signalled after cancel")
	}
}

// TestFeedRetention: events older than the retention go, a few at each
// write and all at once with PruneFeed; the numbering goes on.
func TestFeedRetention(t *testing.T) {
	s, now := clockStore(t)
	s.FeedRetention = 24 * time.Hour
	for range 10 {
		must(t, s.SaveMessage(inboundText(s, "+15551230001", "+15557654321", "old")))
	}
	if n := len(allFeed(t, s)); n != 11 {
		t.Fatalf("%d events, want 11", n)
	}
	*now = now.Add(25 * time.Hour)
	must(t, s.SaveMessage(inboundText(s, "+15551230001", "+15557654321", "new")))
	evs, _ := s.Feed(0, 0)
	if len(evs) != 10 || evs[0].Seq != 3 {
		t.Fatalf("after one write: %d events from %d, want 10 from 3 (2 pruned)", len(evs), evs[0].Seq)
	}
	if n, err := s.PruneFeed(now.Add(-24 * time.Hour)); n != 9 || err != nil {
		t.Fatalf("PruneFeed = %d, %v; want 9", n, err)
	}
	evs, _ = s.Feed(0, 0)
	if len(evs) != 1 || evs[0].Seq != 12 {
		t.Fatalf("left: %+v", evs)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
