package inbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketVoicemail       = []byte("inbox.voicemail")
	bucketVoicemailAudio  = []byte("inbox.voicemail.audio")
	bucketVoicemailNumber = []byte("inbox.voicemail.by_number")
	bucketGreetings       = []byte("inbox.greetings")
)

// Voicemail is one message left on a shared number. Its audio (8 kHz
// 16-bit little-endian mono PCM) is stored beside it in the same
// transaction: a voicemail is either whole or absent.
type Voicemail struct {
	ID         string    `json:"id"`
	Number     string    `json:"number"`
	From       string    `json:"from"`
	ReceivedAt time.Time `json:"received_at"`
	DurationS  float64   `json:"duration_s"`
	Codec      string    `json:"codec"`
	CallID     string    `json:"call_id,omitempty"` // the call record it ended
	HeardBy    []Heard   `json:"heard_by"`
}

// Heard is one member's listening.
type Heard struct {
	User string    `json:"user"`
	At   time.Time `json:"at"`
}

// New reports whether no member has heard it yet.
func (v Voicemail) New() bool { return len(v.HeardBy) == 0 }

func (s *Store) vmBuckets(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketVoicemail, bucketVoicemailAudio, bucketVoicemailNumber, bucketGreetings, bucketContacts, bucketContactsPhone} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// SaveVoicemail stores the message, its audio and (when call is not nil)
// the call record that now ends in voicemail, all in one transaction.
func (s *Store) SaveVoicemail(v *Voicemail, pcm []byte, call *Call) error {
	if v.ID == "" || len(pcm) == 0 {
		return fmt.Errorf("voicemail without id or audio")
	}
	if v.HeardBy == nil {
		v.HeardBy = []Heard{}
	}
	meta, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var rec []byte
	if call != nil {
		if rec, err = json.Marshal(call); err != nil {
			return err
		}
	}
	vmEv, conv := voicemailEvent(s.NewID(), v), s.NewID()
	var callEv Event
	var callConv string // its own: the call's party may not be the voicemail's
	if call != nil {
		callEv, callConv = callEvent(s.NewID(), call), s.NewID()
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if call != nil {
			if err := s.putCall(tx, call, rec, &callEv, callConv); err != nil {
				return err
			}
		}
		vmFeed := func(c *Conversation) error {
			return s.emit(tx, EventVoicemailCreated, v.Number, c.ID, v.ID, VoicemailData{VoicemailID: v.ID, Conversation: c.ID,
				Party: c.Party, ReceivedAt: v.ReceivedAt.UTC(), DurationS: v.DurationS, CallID: v.CallID})
		}
		if _, err := s.appendItem(tx, v.Number, Party(v.From), conv, &vmEv, vmFeed); err != nil {
			return err
		}
		if err := tx.Bucket(bucketVoicemail).Put([]byte(v.ID), meta); err != nil {
			return err
		}
		if err := tx.Bucket(bucketVoicemailAudio).Put([]byte(v.ID), pcm); err != nil {
			return err
		}
		if err := tx.Bucket(bucketVoicemailNumber).Put([]byte(v.Number+"\x00"+v.ID), nil); err != nil {
			return err
		}
		return nil
	})
}

// voicemailEvent is a message's entry in its conversation's timeline.
func voicemailEvent(id string, v *Voicemail) Event {
	return Event{ID: id, Kind: KindVoicemail, At: v.ReceivedAt.UTC(), Inbound: true, Ref: v.ID,
		Text: fmt.Sprintf("voicemail, %.0f s", v.DurationS)}
}

// Voicemail returns one message's metadata.
func (s *Store) Voicemail(id string) (Voicemail, error) {
	var v Voicemail
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVoicemail).Get([]byte(id))
		if b == nil {
			return fmt.Errorf("%w: no voicemail %q", ErrNotFound, id)
		}
		return json.Unmarshal(b, &v)
	})
	return v, err
}

// VoicemailAudio returns a message's PCM audio.
func (s *Store) VoicemailAudio(id string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVoicemailAudio).Get([]byte(id))
		if b == nil {
			return fmt.Errorf("%w: no voicemail %q", ErrNotFound, id)
		}
		out = bytes.Clone(b)
		return nil
	})
	return out, err
}

// Voicemails lists the numbers' messages, newest first.
func (s *Store) Voicemails(numbers []string) ([]Voicemail, error) {
	out := []Voicemail{}
	err := s.db.View(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketVoicemailNumber).Cursor()
		meta := tx.Bucket(bucketVoicemail)
		for _, n := range numbers {
			prefix := []byte(n + "\x00")
			for k, _ := idx.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = idx.Next() {
				var v Voicemail
				if err := json.Unmarshal(meta.Get(k[len(prefix):]), &v); err != nil {
					return fmt.Errorf("voicemail %s: %w", k[len(prefix):], err)
				}
				out = append(out, v)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, err
}

// MarkHeard records that user heard the message (once per user).
func (s *Store) MarkHeard(id, user string, at time.Time) (Voicemail, error) {
	var v Voicemail
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVoicemail)
		raw := b.Get([]byte(id))
		if raw == nil {
			return fmt.Errorf("%w: no voicemail %q", ErrNotFound, id)
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		for _, h := range v.HeardBy {
			if h.User == user {
				return nil
			}
		}
		v.HeardBy = append(v.HeardBy, Heard{User: user, At: at.UTC()})
		out, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), out)
	})
	return v, err
}

// DeleteVoicemail removes a message and its audio.
func (s *Store) DeleteVoicemail(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketVoicemail).Get([]byte(id))
		if raw == nil {
			return fmt.Errorf("%w: no voicemail %q", ErrNotFound, id)
		}
		var v Voicemail
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		for _, del := range []struct{ b, k []byte }{
			{bucketVoicemail, []byte(id)}, {bucketVoicemailAudio, []byte(id)}, {bucketVoicemailNumber, []byte(v.Number + "\x00" + id)},
		} {
			if err := tx.Bucket(del.b).Delete(del.k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Counts are a number's new and old (heard) messages, for MWI.
type Counts struct{ New, Old int }

// VoicemailCounts counts the messages of the numbers together.
func (s *Store) VoicemailCounts(numbers []string) (Counts, error) {
	vs, err := s.Voicemails(numbers)
	var c Counts
	for _, v := range vs {
		if v.New() {
			c.New++
		} else {
			c.Old++
		}
	}
	return c, err
}

// SetGreeting stores a number's greeting (8 kHz 16-bit LE mono PCM); nil
// restores the default.
func (s *Store) SetGreeting(number string, pcm []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if pcm == nil {
			return tx.Bucket(bucketGreetings).Delete([]byte(number))
		}
		return tx.Bucket(bucketGreetings).Put([]byte(number), pcm)
	})
}

// Greeting returns a number's own greeting, or nil for the default.
func (s *Store) Greeting(number string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketGreetings).Get([]byte(number)))
		return nil
	})
	return out, err
}
