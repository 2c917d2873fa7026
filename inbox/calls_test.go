package inbox

import (
	"errors"
	"testing"
	"time"
)

func TestCallsNewestFirstPerNumber(t *testing.T) {
	s, _ := clockStore(t)
	var ids []string
	for i := 0; i < 9; i++ {
		number := []string{"+15551230001", "+15551230002", "+15551230010"}[i%3]
		c := &Call{ID: s.NewID(), Number: number, Disposition: Missed, Branches: []Branch{}}
		ids = append(ids, c.ID)
		if err := s.PutCall(c); err != nil {
			t.Fatal(err)
		}
	}
	// Updating a record keeps one record and one index entry.
	c, err := s.Call(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	c.Disposition = Answered
	if err := s.PutCall(&c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Calls([]string{"+15551230001"}, 10)
	if err != nil || len(got) != 3 || got[0].ID != ids[6] || got[2].ID != ids[0] || got[2].Disposition != Answered {
		t.Fatalf("one number: %v %v", got, err)
	}
	got, _ = s.Calls([]string{"+15551230001", "+15551230002"}, 4)
	if len(got) != 4 || got[0].ID != ids[7] || got[1].ID != ids[6] || got[3].ID != ids[3] {
		t.Fatalf("two numbers, limit 4: %v", got)
	}
	if got, _ = s.Calls(nil, 10); len(got) != 0 {
		t.Fatalf("no numbers: %v", got)
	}
	if _, err := s.Call("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

func TestVoicemailWholeOrAbsent(t *testing.T) {
	s, clock := clockStore(t)
	now := *clock
	call := &Call{ID: s.NewID(), Number: "+15551230001", Disposition: WentToVoicemail, Branches: []Branch{}}
	v := &Voicemail{ID: s.NewID(), Number: call.Number, From: "+15550009999", ReceivedAt: now, DurationS: 2.5, Codec: "PCMA", CallID: call.ID}
	if err := s.SaveVoicemail(v, []byte{1, 2, 3, 4}, call); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveVoicemail(&Voicemail{ID: "x", Number: call.Number}, nil, nil); err == nil {
		t.Fatal("a voicemail without audio was stored")
	}
	if _, err := s.Voicemail("x"); !errors.Is(err, ErrNotFound) {
		t.Fatal("half a voicemail exists")
	}
	if c, _ := s.Call(call.ID); c.Disposition != WentToVoicemail {
		t.Fatal("call record not written with the voicemail")
	}
	if c, _ := s.VoicemailCounts([]string{call.Number}); c.New != 1 || c.Old != 0 {
		t.Fatalf("counts %+v", c)
	}
	got, _ := s.MarkHeard(v.ID, "mia", now)
	got, _ = s.MarkHeard(v.ID, "mia", now)
	if len(got.HeardBy) != 1 {
		t.Fatalf("heard twice: %+v", got)
	}
	if c, _ := s.VoicemailCounts([]string{call.Number}); c.New != 0 || c.Old != 1 {
		t.Fatalf("counts after heard %+v", c)
	}
	if a, _ := s.VoicemailAudio(v.ID); len(a) != 4 {
		t.Fatal("audio")
	}
	if err := s.DeleteVoicemail(v.ID); err != nil {
		t.Fatal(err)
	}
	if vs, _ := s.Voicemails([]string{call.Number}); len(vs) != 0 {
		t.Fatal("deleted voicemail listed")
	}
	if _, err := s.VoicemailAudio(v.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("audio left after delete")
	}
}

func TestCloseInterrupted(t *testing.T) {
	s, clock := clockStore(t)
	now := *clock
	ans := now.Add(-time.Minute)
	open := []*Call{
		{ID: s.NewID(), Number: "+15551230001", StartedAt: now, Disposition: Ringing},
		{ID: s.NewID(), Number: "+15551230001", StartedAt: now, Disposition: Answered, AnsweredAt: &ans},
		{ID: s.NewID(), Number: "+15551230001", StartedAt: now, Disposition: WentToVoicemail, AnsweredAt: &ans},
	}
	done := &Call{ID: s.NewID(), Number: "+15551230001", StartedAt: now, Disposition: Missed, EndedAt: &now}
	for _, c := range append(open, done) {
		c.Branches = []Branch{}
		if err := s.PutCall(c); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.CloseInterrupted(now.Add(2*time.Minute), time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("closed %d, %v", n, err)
	}
	want := []string{Missed, Answered, Missed}
	for i, c := range open {
		got, _ := s.Call(c.ID)
		if got.EndedAt == nil || got.Disposition != want[i] {
			t.Fatalf("call %d: %+v", i, got)
		}
	}
	if got, _ := s.Call(open[1].ID); got.DurationS != 180 {
		t.Fatalf("answered call duration %d", got.DurationS)
	}
}
