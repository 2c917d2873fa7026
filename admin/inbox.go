package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
)

// Operations of the shared inbox and texting.
const (
	OpInboxList    = "inbox.list"
	OpInboxShow    = "inbox.show"
	OpInboxComment = "inbox.comment"
	OpInboxState   = "inbox.state"
	OpMessageSend  = "message.send"
)

// ErrNeedsServer: the operation needs the running server (SIP).
var ErrNeedsServer = errors.New("needs the running server")

// ErrNotDelivered: the far end refused a text or never answered.
var ErrNotDelivered = errors.New("not delivered")

type (
	InboxArgs struct {
		Number string `json:"number,omitempty"`
		State  string `json:"state,omitempty"`
		Limit  int    `json:"limit,omitempty"`
		ID     string `json:"id,omitempty"` // a conversation, or the item commented on
		Text   string `json:"text,omitempty"`
	}
	MessageArgs struct {
		Number string `json:"number"`
		To     string `json:"to"`
		Text   string `json:"text"`
	}
	// ConversationView is a conversation as one user sees it.
	ConversationView struct {
		inbox.Conversation
		ContactName string `json:"contact_name,omitempty"`
		Unread      bool   `json:"unread"` // for the acting user: not opened since the last inbound item
	}
	// ConversationDetail is what "inbox show" returns.
	ConversationDetail struct {
		ConversationView
		Timeline []Entry        `json:"timeline"`
		OpenedBy []Opening      `json:"opened_by"`
		Typing   []inbox.Typist `json:"typing"`
	}
	Opening struct {
		User string    `json:"user"`
		At   time.Time `json:"at"`
	}
	// Entry is one entry of a conversation's timeline. ID is the item's one
	// id: a call's, voicemail's or text's own record id (which "calls show"
	// and the voicemail commands take too) or a comment's; "inbox comment"
	// takes it. An opening or a state change is activity, no item: it has
	// no id.
	Entry struct {
		ID      string    `json:"id,omitempty"`
		Conv    string    `json:"conversation"`
		Number  string    `json:"number"`
		Kind    string    `json:"kind"`
		At      time.Time `json:"at"`
		Inbound bool      `json:"inbound,omitempty"`
		User    string    `json:"user,omitempty"`   // who sent, commented, opened or changed the state
		Text    string    `json:"text,omitempty"`   // a comment's text, an item's summary
		Parent  string    `json:"parent,omitempty"` // a comment's item or the comment it answers
		Thread  string    `json:"thread,omitempty"` // the item a comment's thread hangs on
		State   string    `json:"state,omitempty"`  // a state change's new state
		// The record of a call, voicemail or text; none when deleted since.
		Call      *inbox.Call      `json:"call,omitempty"`
		Voicemail *inbox.Voicemail `json:"voicemail,omitempty"`
		Message   *inbox.Message   `json:"message,omitempty"`
	}
)

// MaxText is the longest text the CLI sends, in bytes.
const MaxText = 1600

func inboxOps() map[string]opFunc {
	return map[string]opFunc{
		OpInboxList: typed(func(ctx context.Context, s *Service, as string, a InboxArgs) (any, error) {
			numbers, err := s.usableNumbers(as, a.Number)
			if err != nil {
				return nil, err
			}
			if a.State != "" && !inbox.ValidState(a.State) {
				return nil, fmt.Errorf("%w: bad --state %q: use open, unread or done", acl.ErrInvalid, a.State)
			}
			if a.Limit < 0 || a.Limit > 10000 {
				return nil, fmt.Errorf("%w: bad --limit %d: use 1 to 10000", acl.ErrInvalid, a.Limit)
			}
			convs, err := s.box.Conversations(numbers, a.State, a.Limit)
			if err != nil {
				return nil, err
			}
			user := actorLabel(as)
			out := make([]ConversationView, 0, len(convs))
			for _, c := range convs {
				out = append(out, s.conversationView(c, user))
			}
			return out, nil
		}),
		OpInboxShow: typed(func(ctx context.Context, s *Service, as string, a InboxArgs) (any, error) {
			c, err := s.conversationFor(as, a.ID)
			if err != nil {
				return nil, err
			}
			user := actorLabel(as)
			// Unread tells whether it was unread for this user before this
			// opening; the state is the one after it.
			view := s.conversationView(c, user)
			if c, err = s.box.Open(c.ID, user); err != nil {
				return nil, err
			}
			tl, err := s.box.Timeline(c.ID, a.Limit)
			if err != nil {
				return nil, err
			}
			entries, err := s.box.Resolve(tl)
			if err != nil {
				return nil, err
			}
			opened, err := s.box.Openings(c.ID)
			if err != nil {
				return nil, err
			}
			d := ConversationDetail{ConversationView: view, Timeline: make([]Entry, 0, len(entries)), OpenedBy: []Opening{}, Typing: []inbox.Typist{}}
			for _, e := range entries {
				d.Timeline = append(d.Timeline, entry(e))
			}
			d.State = c.State
			for _, ev := range opened {
				d.OpenedBy = append(d.OpenedBy, Opening{User: ev.User, At: ev.At})
			}
			if s.Typing != nil {
				d.Typing = s.Typing(c.Number, c.Party)
			}
			return d, nil
		}),
		OpInboxComment: typed(func(ctx context.Context, s *Service, as string, a InboxArgs) (any, error) {
			c, err := s.box.ItemConversation(a.ID)
			missing := fmt.Errorf("%w: no item %q: the ids are in \"partyline inbox show\"", acl.ErrNotFound, a.ID)
			if errors.Is(err, inbox.ErrNotFound) {
				return nil, missing
			}
			if err != nil {
				return nil, err
			}
			if err := s.mayUse(as, c.Number); err != nil {
				if errors.Is(err, acl.ErrNotFound) {
					return nil, missing
				}
				return nil, err
			}
			ev, err := s.box.Comment(a.ID, actorLabel(as), a.Text)
			if err != nil {
				return nil, contactErr(err)
			}
			s.changed(as, OpInboxComment, "number", c.Number, "target", a.ID)
			return ev, nil
		}),
		OpInboxState: typed(func(ctx context.Context, s *Service, as string, a InboxArgs) (any, error) {
			if !inbox.ValidState(a.State) {
				return nil, fmt.Errorf("%w: bad state %q: use open, unread or done", acl.ErrInvalid, a.State)
			}
			c, err := s.conversationFor(as, a.ID)
			if err != nil {
				return nil, err
			}
			user := actorLabel(as)
			if c, err = s.box.SetState(c.ID, user, a.State); err != nil {
				return nil, err
			}
			s.changed(as, OpInboxState, "number", c.Number, "target", c.ID, "state", a.State)
			return s.conversationView(c, user), nil
		}),
		OpMessageSend: typed(func(ctx context.Context, s *Service, as string, a MessageArgs) (any, error) {
			_, actor, n, err := s.numberFor(as, a.Number, acl.NumberUse)
			if err != nil {
				return nil, err
			}
			if actor.Operator {
				return nil, fmt.Errorf("%w: a text goes out in a member's name: add --as USER (a member of %s)", acl.ErrInvalid, n.E164)
			}
			to, err := acl.NormalizeE164(a.To)
			if err != nil {
				return nil, fmt.Errorf("%w: bad --to: %v", acl.ErrInvalid, err)
			}
			if _, ours := s.dir.Snapshot().Number(to); ours {
				return nil, fmt.Errorf("%w: %s is one of our numbers: text outside numbers only", acl.ErrInvalid, to)
			}
			if a.Text == "" || len(a.Text) > MaxText {
				return nil, fmt.Errorf("%w: --text must be 1 to %d bytes", acl.ErrInvalid, MaxText)
			}
			if s.SendText == nil {
				return nil, fmt.Errorf("%w: texts leave through the SIP server: start it with \"partyline serve\" and try again", ErrNeedsServer)
			}
			m, err := s.SendText(n.E164, actor.Name, to, a.Text)
			if err != nil {
				return nil, err
			}
			s.changed(as, OpMessageSend, "number", n.E164, "target", m.ID, "status", m.Status)
			if m.Status != inbox.MsgSent {
				why := fmt.Sprintf("the trunk answered %d", m.StatusCode)
				if m.StatusCode == 408 {
					why = "the trunk did not answer in time (408)"
				}
				return nil, fmt.Errorf("%w: %s; the text is kept in the conversation as failed (message %s)", ErrNotDelivered, why, m.ID)
			}
			return m, nil
		}),
	}
}

// entry is a timeline entry as the CLI shows it: an item under its item id
// (the inbox keeps a call, voicemail or text's event under an id of its
// own, which nothing outside the inbox takes).
func entry(e inbox.Entry) Entry {
	v := Entry{Conv: e.Conv, Number: e.Number, Kind: e.Kind, At: e.At, Inbound: e.Inbound, User: e.User, Text: e.Text,
		Parent: e.Parent, Thread: e.Thread, State: e.State, Call: e.Call, Voicemail: e.Voicemail, Message: e.Message}
	switch e.Kind {
	case inbox.KindCall, inbox.KindVoicemail, inbox.KindMessage, inbox.KindComment:
		v.ID = e.Item()
	}
	return v
}

// actorLabel names the actor in the inbox ("operator" for the local one).
func actorLabel(as string) string {
	if as == "" {
		return "operator"
	}
	return as
}

func (s *Service) conversationView(c inbox.Conversation, user string) ConversationView {
	v := ConversationView{Conversation: c, Unread: s.box.Unread(c, user)}
	if name, ok := s.box.ContactName(c.Party); ok {
		v.ContactName = name
	}
	return v
}

// mayUse checks that the actor may use the number's inbox: to a user who
// is neither member nor manager it looks missing.
func (s *Service) mayUse(as, number string) error {
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return err
	}
	if err := acl.Decide(actor, acl.NumberUse, acl.Target{NumberRole: snap.MemberRole(number, actor.Name)}); err != nil {
		if actor.Role == acl.RoleOwner || actor.Role == acl.RoleAdmin {
			return err // managers are told to add themselves
		}
		return fmt.Errorf("%w: not yours", acl.ErrNotFound)
	}
	return nil
}

// conversationFor loads a conversation the actor may use.
func (s *Service) conversationFor(as, id string) (inbox.Conversation, error) {
	missing := fmt.Errorf("%w: no conversation %q: see \"partyline inbox list\"", acl.ErrNotFound, id)
	c, err := s.box.Conversation(id)
	if errors.Is(err, inbox.ErrNotFound) {
		return c, missing
	}
	if err != nil {
		return c, err
	}
	if err := s.mayUse(as, c.Number); err != nil {
		if errors.Is(err, acl.ErrNotFound) {
			return c, missing
		}
		return c, err
	}
	return c, nil
}
