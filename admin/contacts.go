package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
)

// Operations on the address book.
const (
	OpContactAdd    = "contact.add"
	OpContactList   = "contact.list"
	OpContactRemove = "contact.remove"
)

// ContactArgs adds contacts (one from the CLI flags, many from an
// imported file: all or none), or names one to remove.
type ContactArgs struct {
	Contacts []inbox.Contact `json:"contacts,omitempty"`
	ID       string          `json:"id,omitempty"`
}

func contactOps() map[string]opFunc {
	return map[string]opFunc{
		OpContactAdd: typed(func(ctx context.Context, s *Service, as string, a ContactArgs) (any, error) {
			if _, err := s.dir.Snapshot().Actor(as); err != nil {
				return nil, err
			}
			if len(a.Contacts) == 0 {
				return nil, fmt.Errorf("%w: no contacts given", acl.ErrInvalid)
			}
			added, err := s.box.AddContacts(a.Contacts)
			if err != nil {
				return nil, contactErr(err)
			}
			s.changed(as, OpContactAdd, "contacts", len(added))
			return added, nil
		}),
		OpContactList: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
			if _, err := s.dir.Snapshot().Actor(as); err != nil {
				return nil, err
			}
			return s.box.Contacts()
		}),
		OpContactRemove: typed(func(ctx context.Context, s *Service, as string, a ContactArgs) (any, error) {
			if _, err := s.dir.Snapshot().Actor(as); err != nil {
				return nil, err
			}
			c, err := s.box.RemoveContact(a.ID)
			if err != nil {
				return nil, contactErr(err)
			}
			s.changed(as, OpContactRemove, "target", c.ID)
			return Done{"removed contact " + c.Name}, nil
		}),
	}
}

// contactErr maps the inbox's outcomes to the CLI's kinds.
func contactErr(err error) error {
	switch {
	case errors.Is(err, inbox.ErrExists):
		return fmt.Errorf("%w: %v", acl.ErrExists, strings.TrimPrefix(err.Error(), inbox.ErrExists.Error()+": "))
	case errors.Is(err, inbox.ErrNotFound):
		return fmt.Errorf("%w: %v", acl.ErrNotFound, strings.TrimPrefix(err.Error(), inbox.ErrNotFound.Error()+": "))
	case errors.Is(err, inbox.ErrInvalid), errors.Is(err, acl.ErrInvalid):
		msg := strings.Replace(err.Error(), inbox.ErrInvalid.Error()+": ", "", 1)
		msg = strings.Replace(msg, acl.ErrInvalid.Error()+": ", "", 1)
		return fmt.Errorf("%w: %s", acl.ErrInvalid, msg)
	}
	return err
}
