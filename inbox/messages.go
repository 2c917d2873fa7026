package inbox

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketMessages = []byte("inbox.messages") // message id → Message

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

// SaveMessage stores a new text and appends it to its conversation, in one
// transaction committed to disk before it returns; an inbound one makes
// the conversation unread.
func (s *Store) SaveMessage(m *Message) error {
	if m.ID == "" || m.Number == "" || m.Party == "" {
		return fmt.Errorf("message without id, number or party")
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ev := Event{ID: s.NewID(), Kind: KindMessage, At: m.At.UTC(), Inbound: m.Direction == "inbound", Ref: m.ID, User: m.Member, Text: m.Text}
	conv := s.NewID()
	return s.db.Batch(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMessages).Get([]byte(m.ID)) != nil {
			return fmt.Errorf("%w: message %s", ErrExists, m.ID)
		}
		if err := tx.Bucket(bucketMessages).Put([]byte(m.ID), v); err != nil {
			return err
		}
		_, err := s.appendItem(tx, m.Number, m.Party, conv, &ev)
		return err
	})
}

// UpdateMessage rewrites a stored text's status and deliveries; the
// timeline already has it.
func (s *Store) UpdateMessage(m *Message) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMessages)
		if b.Get([]byte(m.ID)) == nil {
			return fmt.Errorf("%w: no message %q", ErrNotFound, m.ID)
		}
		return b.Put([]byte(m.ID), v)
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
