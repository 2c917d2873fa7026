package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/webhook"
)

// Operations on outgoing webhooks: workspace owners and admins only.
const (
	OpWebhookAdd        = "webhook.add"
	OpWebhookList       = "webhook.list"
	OpWebhookRemove     = "webhook.remove"
	OpWebhookDeliveries = "webhook.deliveries"
)

type (
	WebhookArgs struct {
		ID     string   `json:"id,omitempty"`
		URL    string   `json:"url,omitempty"`
		Events []string `json:"events,omitempty"`
		Number string   `json:"number,omitempty"`
		Limit  int      `json:"limit,omitempty"`
	}
	// WebhookView is a webhook as listed: never its secret.
	WebhookView struct {
		ID      string    `json:"id"`
		URL     string    `json:"url"`
		Events  []string  `json:"events"`
		Number  string    `json:"number,omitempty"`
		Created time.Time `json:"created"`
		Pending int       `json:"pending"` // events waiting to be delivered
	}
	// WebhookCreated is a new webhook with its secret, shown this once.
	WebhookCreated struct {
		WebhookView
		Secret string `json:"secret"`
	}
	// WebhookDeliveries is a webhook's last attempts, newest first.
	WebhookDeliveries struct {
		WebhookView
		Attempts []webhook.Attempt `json:"attempts"`
	}
)

func webhookOps() map[string]opFunc {
	return map[string]opFunc{
		OpWebhookAdd: typed(func(ctx context.Context, s *Service, as string, a WebhookArgs) (any, error) {
			snap, err := s.mayWebhooks(as)
			if err != nil {
				return nil, err
			}
			if a.Number != "" {
				e, err := acl.NormalizeE164(a.Number)
				if err != nil {
					return nil, err
				}
				if _, ok := snap.Number(e); !ok {
					return nil, fmt.Errorf("%w: unknown number %s: see \"partyline number list\"", acl.ErrNotFound, e)
				}
				a.Number = e
			}
			after, err := s.box.FeedSeq()
			if err != nil {
				return nil, err
			}
			h, err := s.hooks.Add(a.URL, a.Events, a.Number, after)
			if err != nil {
				return nil, webhookErr(err)
			}
			s.changed(as, OpWebhookAdd, "webhook", h.ID, "url", h.URL)
			return WebhookCreated{WebhookView: webhookView(h, 0), Secret: h.Secret}, nil
		}),
		OpWebhookList: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
			if _, err := s.mayWebhooks(as); err != nil {
				return nil, err
			}
			hs, err := s.hooks.Hooks()
			if err != nil {
				return nil, err
			}
			out := []WebhookView{}
			for _, h := range hs {
				n, err := s.hooks.Pending(h.ID)
				if err != nil {
					return nil, err
				}
				out = append(out, webhookView(h, n))
			}
			return out, nil
		}),
		OpWebhookRemove: typed(func(ctx context.Context, s *Service, as string, a WebhookArgs) (any, error) {
			if _, err := s.mayWebhooks(as); err != nil {
				return nil, err
			}
			h, err := s.hooks.Remove(a.ID)
			if err != nil {
				return nil, webhookErr(err)
			}
			s.changed(as, OpWebhookRemove, "webhook", h.ID)
			return Done{"removed webhook " + h.ID + " (" + h.URL + ")"}, nil
		}),
		OpWebhookDeliveries: typed(func(ctx context.Context, s *Service, as string, a WebhookArgs) (any, error) {
			if _, err := s.mayWebhooks(as); err != nil {
				return nil, err
			}
			h, err := s.hooks.Hook(a.ID)
			if err != nil {
				return nil, webhookErr(err)
			}
			n, err := s.hooks.Pending(h.ID)
			if err != nil {
				return nil, err
			}
			limit := a.Limit
			if limit <= 0 {
				limit = 20
			}
			as_, err := s.hooks.Attempts(h.ID, limit)
			if err != nil {
				return nil, webhookErr(err)
			}
			return WebhookDeliveries{WebhookView: webhookView(h, n), Attempts: as_}, nil
		}),
	}
}

// mayWebhooks: webhooks see every number's events, so only workspace
// owners and admins (and the operator) manage them, as they manage
// numbers and trunks.
func (s *Service) mayWebhooks(as string) (*acl.Snapshot, error) {
	if s.hooks == nil {
		return nil, fmt.Errorf("webhooks are not available in this service")
	}
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return snap, err
	}
	if actor.Operator || actor.Role == acl.RoleOwner || actor.Role == acl.RoleAdmin {
		return snap, nil
	}
	return snap, fmt.Errorf("%w: %s (workspace %s) may not manage webhooks: only workspace owners and admins can", acl.ErrForbidden, actor.Name, actor.Role)
}

// webhookErr gives the webhook store's errors the kinds the CLI shows.
func webhookErr(err error) error {
	for _, k := range []struct{ from, to error }{{webhook.ErrInvalid, acl.ErrInvalid}, {webhook.ErrNotFound, acl.ErrNotFound}} {
		if errors.Is(err, k.from) {
			return fmt.Errorf("%w: %s", k.to, strings.TrimPrefix(err.Error(), k.from.Error()+": "))
		}
	}
	return err
}

func webhookView(h webhook.Hook, pending int) WebhookView {
	return WebhookView{ID: h.ID, URL: h.URL, Events: append([]string{}, h.Events...), Number: h.Number, Created: h.Created, Pending: pending}
}
