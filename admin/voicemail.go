package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
)

// Operations on voicemail and greetings.
const (
	OpVoicemailList   = "voicemail.list"
	OpVoicemailHeard  = "voicemail.heard"
	OpVoicemailDelete = "voicemail.delete"
	OpVoicemailAudio  = "voicemail.export"
	OpGreetingSet     = "voicemail.greeting.set"
)

type (
	VoicemailArgs struct {
		Number string `json:"number,omitempty"`
		ID     string `json:"id,omitempty"`
		// PCM is 8 kHz 16-bit little-endian mono audio (greeting set); empty
		// with Reset restores the default greeting.
		PCM   []byte `json:"pcm,omitempty"`
		Reset bool   `json:"reset,omitempty"`
	}
	// VoicemailAudio is a message with its audio, for export.
	VoicemailAudio struct {
		Voicemail inbox.Voicemail `json:"voicemail"`
		PCM       []byte          `json:"pcm"`
	}
)

func voicemailOps() map[string]opFunc {
	return map[string]opFunc{
		OpVoicemailList: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
			numbers, err := s.usableNumbers(as, a.Number)
			if err != nil {
				return nil, err
			}
			return s.box.Voicemails(numbers)
		}),
		OpVoicemailHeard: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
			actor, v, err := s.voicemailFor(as, a.ID, acl.NumberUse)
			if err != nil {
				return nil, err
			}
			v, err = s.box.MarkHeard(v.ID, actorName(actor), time.Now())
			if err != nil {
				return nil, err
			}
			s.voicemailChanged(v.Number)
			return v, nil
		}),
		OpVoicemailAudio: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
			actor, v, err := s.voicemailFor(as, a.ID, acl.NumberUse)
			if err != nil {
				return nil, err
			}
			pcm, err := s.box.VoicemailAudio(v.ID)
			if err != nil {
				return nil, err
			}
			if v, err = s.box.MarkHeard(v.ID, actorName(actor), time.Now()); err != nil {
				return nil, err
			}
			s.voicemailChanged(v.Number)
			return VoicemailAudio{Voicemail: v, PCM: pcm}, nil
		}),
		OpVoicemailDelete: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
			_, v, err := s.voicemailFor(as, a.ID, acl.NumberSettings)
			if err != nil {
				return nil, err
			}
			if err := s.box.DeleteVoicemail(v.ID); err != nil {
				return nil, err
			}
			s.changed(as, OpVoicemailDelete, "number", v.Number, "target", v.ID)
			s.voicemailChanged(v.Number)
			return Done{"deleted voicemail " + v.ID}, nil
		}),
		OpGreetingSet: typed(func(ctx context.Context, s *Service, as string, a VoicemailArgs) (any, error) {
			_, _, n, err := s.numberFor(as, a.Number, acl.NumberSettings)
			if err != nil {
				return nil, err
			}
			e := n.E164
			const maxGreeting = 8000 * 2 * 120 // 2 minutes
			switch {
			case a.Reset:
				a.PCM = nil
			case len(a.PCM) < 1600 || len(a.PCM)%2 != 0:
				return nil, fmt.Errorf("%w: the greeting is shorter than 0.1 s: record a longer WAV file", acl.ErrInvalid)
			case len(a.PCM) > maxGreeting:
				return nil, fmt.Errorf("%w: the greeting is longer than 2 minutes: trim the WAV file", acl.ErrInvalid)
			}
			if err := s.box.SetGreeting(e, a.PCM); err != nil {
				return nil, err
			}
			s.changed(as, OpGreetingSet, "number", e, "bytes", len(a.PCM))
			if a.PCM == nil {
				return Done{e + " now plays the default greeting"}, nil
			}
			return Done{fmt.Sprintf("%s now plays a %.1f s greeting", e, float64(len(a.PCM))/16000)}, nil
		}),
	}
}

// voicemailFor loads a message the actor may act on with act; to others
// it looks missing.
func (s *Service) voicemailFor(as, id string, act acl.Action) (acl.Actor, inbox.Voicemail, error) {
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return actor, inbox.Voicemail{}, err
	}
	missing := fmt.Errorf("%w: no voicemail %q: see \"partyline voicemail list\"", acl.ErrNotFound, id)
	v, err := s.box.Voicemail(id)
	if errors.Is(err, inbox.ErrNotFound) {
		return actor, v, missing
	}
	if err != nil {
		return actor, v, err
	}
	role := snap.MemberRole(v.Number, actor.Name)
	if err := acl.Decide(actor, acl.NumberUse, acl.Target{NumberRole: role}); err != nil {
		if actor.Role == acl.RoleOwner || actor.Role == acl.RoleAdmin {
			return actor, v, err // managers are told to add themselves
		}
		return actor, v, missing
	}
	if err := acl.Decide(actor, act, acl.Target{NumberRole: role}); err != nil {
		return actor, v, err
	}
	return actor, v, nil
}

func actorName(a acl.Actor) string {
	if a.Operator {
		return "operator"
	}
	return a.Name
}

// voicemailChanged tells the running server (message lamps) when set.
func (s *Service) voicemailChanged(number string) {
	if s.OnVoicemailChange != nil {
		s.OnVoicemailChange(number)
	}
}
