package inbox

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketMessages    = []byte("inbox.messages")        // message id → Message
	bucketMessageKeys = []byte("inbox.messages.by_key") // Message.Key → message id
)

// Message statuses.
const (
	MsgReceived = "received" // inbound, stored; deliveries follow
	MsgSending  = "sending"  // outbound, stored, not yet answered by the trunk
	MsgSent     = "sent"     // outbound, the trunk answered 2xx
	MsgFailed   = "failed"   // outbound, the trunk refused it or never answered
)

// Delivery outcomes of an inbound text to one device.
const (
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Message is one text (SIP MESSAGE) in or out of a shared number.
type Message struct {
	ID          string     `json:"id"`
	Number      string     `json:"number"`
	Party       string     `json:"party"`
	Direction   string     `json:"direction"`        // inbound | outbound
	Member      string     `json:"member,omitempty"` // who sent it (outbound)
	Text        string     `json:"text"`
	ContentType string     `json:"content_type"`
	At          time.Time  `json:"at"`
	Status      string     `json:"status"`
	StatusCode  int        `json:"status_code,omitempty"` // the trunk's final answer (outbound)
	CallID      string     `json:"call_id,omitempty"`
	Key         string     `json:"key,omitempty"`        // inbound over SIP: stored once per key (InboundKey)
	Deliveries  []Delivery `json:"deliveries,omitempty"` // inbound: one per device
}

// Delivery is an inbound text's delivery to one member's device.
type Delivery struct {
	User    string    `json:"user"`
	Contact string    `json:"contact"`
	Outcome string    `json:"outcome"`
	Status  int       `json:"status,omitempty"`
	At      time.Time `json:"at"`
}

// InboundKey is the key a text received over SIP is stored once by: a
// carrier that did not get our 200 resends the same MESSAGE, with the same
// Call-ID, CSeq number and From tag (RFC 3261 §8.1.1, §17.2.3).
func InboundKey(callID string, cseq uint32, fromTag string) string {
	return strconv.FormatUint(uint64(cseq), 10) + " " + strconv.Itoa(len(fromTag)) + ":" + fromTag + " " + callID
}

// SaveMessage stores a new text and appends it to its conversation, in one
// transaction committed to disk before it returns; an inbound one makes
// the conversation unread. A text whose Key is already stored is refused
// with ErrExists (SaveInbound returns the stored one instead).
func (s *Store) SaveMessage(m *Message) error {
	_, dup, err := s.saveMessage(m)
	if dup {
		return fmt.Errorf("%w: a message with key %q", ErrExists, m.Key)
	}
	return err
}

// SaveInbound stores a received text at most once per m.Key (InboundKey):
// the first time as SaveMessage does, returning m with dup false; when a
// text with that key is already stored (a carrier's resend, even after a
// restart), it writes nothing and returns the stored text with dup true.
// A key lasts as long as its text.
func (s *Store) SaveInbound(m *Message) (stored Message, dup bool, err error) {
	if m.Key == "" {
		return Message{}, false, fmt.Errorf("inbound message without key")
	}
	return s.saveMessage(m)
}

// saveMessage writes m, its key and its timeline entry in one transaction,
// or (dup) returns the text already stored under m.Key.
func (s *Store) saveMessage(m *Message) (stored Message, dup bool, err error) {
	if m.ID == "" || m.Number == "" || m.Party == "" {
		return Message{}, false, fmt.Errorf("message without id, number or party")
	}
	v, err := json.Marshal(m)
	if err != nil {
		return Message{}, false, err
	}
	ev := Event{ID: s.NewID(), Kind: KindMessage, At: m.At.UTC(), Inbound: m.Direction == "inbound", Ref: m.ID, User: m.Member, Text: m.Text}
	conv := s.NewID()
	err = s.db.Batch(func(tx *bolt.Tx) error {
		stored, dup = Message{}, false // Batch may run this more than once
		msgs, keys := tx.Bucket(bucketMessages), tx.Bucket(bucketMessageKeys)
		if m.Key != "" {
			if id := keys.Get([]byte(m.Key)); id != nil {
				raw := msgs.Get(id)
				if raw == nil {
					return fmt.Errorf("message key %q names message %s, which is missing", m.Key, id)
				}
				dup = true
				return json.Unmarshal(raw, &stored)
			}
		}
		if msgs.Get([]byte(m.ID)) != nil {
			return fmt.Errorf("%w: message %s", ErrExists, m.ID)
		}
		if err := msgs.Put([]byte(m.ID), v); err != nil {
			return err
		}
		if m.Key != "" {
			if err := keys.Put([]byte(m.Key), []byte(m.ID)); err != nil {
				return err
			}
		}
		_, err := s.appendItem(tx, m.Number, m.Party, conv, &ev, func(c *Conversation) error {
			typ := EventMessageSent
			if m.Direction == "inbound" {
				typ = EventMessageReceived
			}
			return s.emit(tx, typ, m.Number, c.ID, m.ID, messageData(m, c.ID))
		})
		return err
	})
	if err != nil {
		return Message{}, false, err
	}
	if !dup {
		stored = *m
	}
	return stored, dup, nil
}

// UpdateMessage rewrites a stored text's status and deliveries; the
// timeline already has it, and its Key stays what it was stored with.
func (s *Store) UpdateMessage(m *Message) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMessages)
		raw := b.Get([]byte(m.ID))
		if raw == nil {
			return fmt.Errorf("%w: no message %q", ErrNotFound, m.ID)
		}
		var was Message
		if err := json.Unmarshal(raw, &was); err != nil {
			return fmt.Errorf("message %s: %w", m.ID, err)
		}
		up := *m
		up.Key = was.Key
		v, err := json.Marshal(&up)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(m.ID), v); err != nil {
			return err
		}
		// A text out settled: the trunk took it or not.
		if up.Status == was.Status || up.Direction != "outbound" || (up.Status != MsgSent && up.Status != MsgFailed) {
			return nil
		}
		typ := EventMessageDelivered
		if up.Status == MsgFailed {
			typ = EventMessageFailed
		}
		conv := string(tx.Bucket(bucketItems).Get([]byte(m.ID)))
		return s.emit(tx, typ, up.Number, conv, up.ID, messageData(&up, conv))
	})
}

// Message returns one text.
func (s *Store) Message(id string) (Message, error) {
	var m Message
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMessages).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: no message %q", ErrNotFound, id)
		}
		return json.Unmarshal(v, &m)
	})
	return m, err
}

// Typist is someone typing in a conversation now (RFC 3994 isComposing);
// the server keeps these in memory only.
type Typist struct {
	Who    string    `json:"who"`    // a member, or the outside party's number
	Member bool      `json:"member"` // a teammate (else the outside party)
	Until  time.Time `json:"until"`
}
