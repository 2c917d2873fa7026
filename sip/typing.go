package sip

// Typing notices (RFC 3994 isComposing): who is typing in a conversation,
// shown by the inbox and passed to teammates' phones; never stored.

import (
	"encoding/xml"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// composingState is an RFC 3994 isComposing document's news.
type composingState struct {
	Active  bool
	Refresh time.Duration // 0: not given
}

func parseComposing(body []byte) (composingState, bool) {
	var doc struct {
		XMLName xml.Name `xml:"isComposing"`
		State   string   `xml:"state"`
		Refresh string   `xml:"refresh"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		return composingState{}, false
	}
	st := composingState{}
	switch strings.TrimSpace(doc.State) {
	case "active":
		st.Active = true
	case "idle":
	default:
		return st, false
	}
	if r := strings.TrimSpace(doc.Refresh); r != "" {
		n, err := strconv.Atoi(r)
		if err != nil || n <= 0 {
			return st, false
		}
		st.Refresh = time.Duration(min(n, 3600)) * time.Second
	}
	return st, true
}

// typingState is who types in which conversation (number \0 party), until
// when. It lives in memory only: it expires in seconds.
type typingState struct {
	mu sync.Mutex
	m  map[string][]inbox.Typist
}

// DefaultTypingRefresh is how long an isComposing "active" without a
// refresh lasts.
const DefaultTypingRefresh = 15 * time.Second

func (s *Server) typingSet(number, party, who string, st composingState, member bool) {
	if !st.Active {
		s.typingClear(number, party, who)
		return
	}
	d := st.Refresh
	if d == 0 {
		d = s.TypingRefresh
	}
	if d == 0 {
		d = DefaultTypingRefresh
	}
	now := s.Now()
	k := number + "\x00" + party
	s.typing.mu.Lock()
	defer s.typing.mu.Unlock()
	if s.typing.m == nil {
		s.typing.m = map[string][]inbox.Typist{}
	}
	list := slices.DeleteFunc(s.typing.m[k], func(t inbox.Typist) bool { return t.Who == who || !now.Before(t.Until) })
	s.typing.m[k] = append(list, inbox.Typist{Who: who, Member: member, Until: now.Add(d).UTC()})
	// Bound the map: drop conversations whose typists all expired.
	if len(s.typing.m) > 1024 {
		for k, l := range s.typing.m {
			if l = slices.DeleteFunc(l, func(t inbox.Typist) bool { return !now.Before(t.Until) }); len(l) == 0 {
				delete(s.typing.m, k)
			} else {
				s.typing.m[k] = l
			}
		}
	}
}

func (s *Server) typingClear(number, party, who string) {
	k := number + "\x00" + party
	s.typing.mu.Lock()
	defer s.typing.mu.Unlock()
	if l, ok := s.typing.m[k]; ok {
		if l = slices.DeleteFunc(l, func(t inbox.Typist) bool { return t.Who == who }); len(l) == 0 {
			delete(s.typing.m, k)
		} else {
			s.typing.m[k] = l
		}
	}
}

// Typing names who is typing in the conversation of number with party now.
func (s *Server) Typing(number, party string) []inbox.Typist {
	now := s.Now()
	s.typing.mu.Lock()
	defer s.typing.mu.Unlock()
	out := []inbox.Typist{}
	for _, t := range s.typing.m[number+"\x00"+party] {
		if now.Before(t.Until) {
			out = append(out, t)
		}
	}
	return out
}

// showTyping tells the teammates' devices (not the typist's own) that a
// member is typing to party: an isComposing MESSAGE from the member, whose
// display name says to whom.
func (s *Server) showTyping(number, party, member, skip string, body []byte) {
	n, ok := s.dir.Snapshot().Number(number)
	if !ok {
		return
	}
	var users []string
	for _, m := range n.Members {
		if m.User != member {
			users = append(users, m.User)
		}
	}
	from := sip.Uri{Scheme: "sip", User: member, Host: s.dir.Realm()}
	s.sendToDevices(users, skip, func(user string, b location.Binding) (*sip.Request, error) {
		return s.textRequest(b, member+" to "+party, from, sip.Uri{Scheme: "sip", User: user, Host: s.dir.Realm()}, ctypeComposing, body)
	})
}
