package inbox

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The feed: every change the inbox records is also an event here, numbered
// by the workspace's own sequence (the bucket's, in commit order) and
// written in the transaction of the change. Live events (SSE) and the
// webhook outbox read it from a sequence number on.
var bucketFeed = []byte("inbox.feed") // 8-byte big-endian seq → FeedEvent

// Types of feed events.
const (
	EventCallRinging         = "call.ringing"         // a call's first record: it rings (or rings out)
	EventCallAnswered        = "call.answered"        // a member answered (voicemail picking up is not this)
	EventCallCompleted       = "call.completed"       // the call ended, whatever its disposition
	EventVoicemailCreated    = "voicemail.created"    // a voicemail stored, whole
	EventMessageReceived     = "message.received"     // a text in, stored
	EventMessageSent         = "message.sent"         // a member's text out, stored, on its way to the trunk
	EventMessageDelivered    = "message.delivered"    // the trunk accepted a text out (2xx)
	EventMessageFailed       = "message.failed"       // the trunk refused a text out or never answered
	EventCommentCreated      = "comment.created"      // an internal comment or reply
	EventConversationUpdated = "conversation.updated" // created, its state changed, or a member opened it
)

// FeedTypes lists every feed event type.
var FeedTypes = []string{
	EventCallRinging, EventCallAnswered, EventCallCompleted, EventVoicemailCreated,
	EventMessageReceived, EventMessageSent, EventMessageDelivered, EventMessageFailed,
	EventCommentCreated, EventConversationUpdated,
}

// ValidFeedType reports one of FeedTypes.
func ValidFeedType(t string) bool { return slices.Contains(FeedTypes, t) }

// DefaultFeedRetention is how long the feed keeps an event when
// Store.FeedRetention is zero.
const DefaultFeedRetention = 7 * 24 * time.Hour

// FeedEvent is one change of the inbox. Data is a small JSON object
// (CallData, VoicemailData, MessageData, CommentData or ConversationData by
// Type) with the ids involved; never a password or secret.
type FeedEvent struct {
	Seq    uint64          `json:"seq"`    // the workspace's sequence, from 1, increasing in commit order
	Type   string          `json:"type"`   // one of FeedTypes
	At     time.Time       `json:"at"`     // when it was committed
	Number string          `json:"number"` // the shared number, E.164
	Conv   string          `json:"conversation,omitempty"`
	Item   string          `json:"item,omitempty"` // the call, voicemail, message or comment
	Data   json.RawMessage `json:"data"`
}

// CallData is the data of call.* events.
type CallData struct {
	CallID       string     `json:"call_id"`
	Conversation string     `json:"conversation_id,omitempty"`
	Direction    string     `json:"direction"`
	Party        string     `json:"party"`
	Member       string     `json:"member,omitempty"` // who called out
	Disposition  string     `json:"disposition"`
	StartedAt    time.Time  `json:"started_at"`
	AnsweredAt   *time.Time `json:"answered_at,omitempty"`
	EndedAt      *time.Time `json:"ended_at,omitempty"`
	DurationS    int        `json:"duration_s"`
	AnsweredBy   string     `json:"answered_by,omitempty"` // the member who took it
	VoicemailID  string     `json:"voicemail_id,omitempty"`
}

// VoicemailData is the data of voicemail.created.
type VoicemailData struct {
	VoicemailID  string    `json:"voicemail_id"`
	Conversation string    `json:"conversation_id"`
	Party        string    `json:"party"`
	ReceivedAt   time.Time `json:"received_at"`
	DurationS    float64   `json:"duration_s"`
	CallID       string    `json:"call_id,omitempty"`
}

// MessageData is the data of message.* events.
type MessageData struct {
	MessageID    string    `json:"message_id"`
	Conversation string    `json:"conversation_id,omitempty"`
	Direction    string    `json:"direction"`
	Party        string    `json:"party"`
	Member       string    `json:"member,omitempty"` // who sent it (outbound)
	Text         string    `json:"text"`
	At           time.Time `json:"at"`
	Status       string    `json:"status"`
	StatusCode   int       `json:"status_code,omitempty"`
}

// CommentData is the data of comment.created.
type CommentData struct {
	CommentID    string    `json:"comment_id"`
	Conversation string    `json:"conversation_id"`
	Parent       string    `json:"parent_id"` // the item or comment it answers
	Thread       string    `json:"thread_id"` // the item its thread hangs on
	User         string    `json:"user"`
	Text         string    `json:"text"`
	At           time.Time `json:"at"`
}

// Changes a conversation.updated event reports.
const (
	ChangeCreated = "created" // its first item
	ChangeState   = "state"   // its state changed (a member, or an inbound item)
	ChangeOpened  = "opened"  // a member opened it
)

// ConversationData is the data of conversation.updated.
type ConversationData struct {
	Conversation  string `json:"conversation_id"`
	Party         string `json:"party"`
	Change        string `json:"change"` // ChangeCreated, ChangeState or ChangeOpened
	State         string `json:"state"`
	PreviousState string `json:"previous_state,omitempty"`
	User          string `json:"user,omitempty"` // who opened it or changed the state; none for an inbound item
}

// subscribers are the channels told of each commit that added events.
type subscribers struct {
	mu    sync.Mutex
	chans map[chan struct{}]struct{}
}

func feedKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

func (s *Store) feedRetention() time.Duration {
	if s.FeedRetention > 0 {
		return s.FeedRetention
	}
	return DefaultFeedRetention
}

// pruneEach bounds how many expired events one write removes: more than
// one per event written, so the feed shrinks back to its retention.
const pruneEach = 2

// emit appends an event to the feed in tx, with the next sequence number,
// and has subscribers told once tx commits. It also drops up to pruneEach
// events older than the retention, so the feed needs no sweeper.
func (s *Store) emit(tx *bolt.Tx, typ, number, conv, item string, data any) error {
	if number == "" {
		return nil // nothing to route it by (no shared number)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketFeed)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	now := s.now().UTC()
	v, err := json.Marshal(FeedEvent{Seq: seq, Type: typ, At: now, Number: number, Conv: conv, Item: item, Data: raw})
	if err != nil {
		return err
	}
	if err := b.Put(feedKey(seq), v); err != nil {
		return err
	}
	tx.OnCommit(s.notify)
	_, err = pruneFeed(b, now.Add(-s.feedRetention()), pruneEach)
	return err
}

// pruneFeed deletes events committed before cutoff, oldest first, at most
// limit; it returns how many.
func pruneFeed(b *bolt.Bucket, cutoff time.Time, limit int) (int, error) {
	var old [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(old) < limit; k, v = c.Next() {
		var e struct {
			At time.Time `json:"at"`
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return 0, fmt.Errorf("feed event %x: %w", k, err)
		}
		if !e.At.Before(cutoff) {
			break
		}
		old = append(old, k)
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

// PruneFeed deletes every event committed before cutoff (writes prune a
// few as they go; this catches up at once), in transactions of at most
// 10,000 deletions, and returns how many it deleted.
func (s *Store) PruneFeed(cutoff time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			var err error
			n, err = pruneFeed(tx.Bucket(bucketFeed), cutoff, 10000)
			return err
		})
		total += n
		if err != nil || n < 10000 {
			return total, err
		}
	}
}

// Feed returns the events after sequence number after, oldest first, at
// most limit (0: 100; at most 1,000). A consumer resumes from the last
// Seq it handled; when the first event returned is not after+1, events
// between were pruned (older than the retention).
func (s *Store) Feed(after uint64, limit int) ([]FeedEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	out := []FeedEvent{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFeed).Cursor()
		for k, v := c.Seek(feedKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var e FeedEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("feed event %x: %w", k, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// FeedSeq is the sequence number of the newest event committed (0 when
// none ever was): a consumer that wants only what comes next starts there.
func (s *Store) FeedSeq() (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		seq = tx.Bucket(bucketFeed).Sequence()
		return nil
	})
	return seq, err
}

// Subscribe returns a channel that receives a value after each commit
// that added events to the feed (several commits may fold into one value:
// read the feed from the last Seq handled), and cancel, which stops it.
// Only this process's commits signal it. The signal never blocks a writer.
func (s *Store) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.subs.mu.Lock()
	if s.subs.chans == nil {
		s.subs.chans = map[chan struct{}]struct{}{}
	}
	s.subs.chans[ch] = struct{}{}
	s.subs.mu.Unlock()
	return ch, func() {
		s.subs.mu.Lock()
		delete(s.subs.chans, ch)
		s.subs.mu.Unlock()
	}
}

// notify tells every subscriber that the feed grew.
func (s *Store) notify() {
	s.subs.mu.Lock()
	for ch := range s.subs.chans {
		select {
		case ch <- struct{}{}:
		default: // already signalled, not yet read
		}
	}
	s.subs.mu.Unlock()
}

// callFeed emits the events of a call record's change from was (nil: its
// first write) to c: ringing on the first write, answered when a member
// took it, completed when it ended. A write that skips steps (records are
// written coalesced) emits each step it passed, in order.
func (s *Store) callFeed(tx *bolt.Tx, was, c *Call) error {
	if c.Number == "" {
		return nil
	}
	conv := string(tx.Bucket(bucketItems).Get([]byte(c.ID)))
	d := CallData{CallID: c.ID, Conversation: conv, Direction: c.Direction, Party: Party(c.Remote), Member: c.Member,
		Disposition: c.Disposition, StartedAt: c.StartedAt.UTC(), AnsweredAt: c.AnsweredAt, EndedAt: c.EndedAt,
		DurationS: c.DurationS, VoicemailID: c.VoicemailID}
	if c.AnsweredBy != nil {
		d.AnsweredBy = c.AnsweredBy.User
	}
	answered := func(r *Call) bool { return r.AnsweredAt != nil && r.Disposition == Answered }
	var types []string
	if was == nil {
		types = append(types, EventCallRinging)
	}
	if answered(c) && (was == nil || !answered(was)) {
		types = append(types, EventCallAnswered)
	}
	if c.EndedAt != nil && (was == nil || was.EndedAt == nil) {
		types = append(types, EventCallCompleted)
	}
	for _, typ := range types {
		if err := s.emit(tx, typ, c.Number, conv, c.ID, d); err != nil {
			return err
		}
	}
	return nil
}

// messageData is a text's event data.
func messageData(m *Message, conv string) MessageData {
	return MessageData{MessageID: m.ID, Conversation: conv, Direction: m.Direction, Party: m.Party, Member: m.Member,
		Text: m.Text, At: m.At.UTC(), Status: m.Status, StatusCode: m.StatusCode}
}

// convFeed emits conversation.updated when an item created the
// conversation or changed its state (was is the conversation before).
func (s *Store) convFeed(tx *bolt.Tx, was, c *Conversation, user string) error {
	d := ConversationData{Conversation: c.ID, Party: c.Party, State: c.State, User: user}
	switch {
	case was.ID == "":
		d.Change = ChangeCreated
	case was.State != c.State:
		d.Change, d.PreviousState = ChangeState, was.State
	default:
		return nil
	}
	return s.emit(tx, EventConversationUpdated, c.Number, c.ID, "", d)
}
