package admin

import (
	"context"

	"github.com/partyline/partyline/acl"
)

// Operations on the carriers' trunks.
const (
	OpTrunkAdd    = "trunk.add"
	OpTrunkList   = "trunk.list"
	OpTrunkRemove = "trunk.remove"
)

type (
	TrunkArgs struct {
		Name    string   `json:"name"`
		Address string   `json:"address,omitempty"`
		Allow   []string `json:"allow,omitempty"`
	}
	TrunkView struct {
		Name    string   `json:"name"`
		Address string   `json:"address"`
		Allow   []string `json:"allow"`
	}
)

func trunkOps() map[string]opFunc {
	return map[string]opFunc{
		OpTrunkAdd: typed(func(ctx context.Context, s *Service, as string, a TrunkArgs) (any, error) {
			if err := s.dir.AddTrunk(as, a.Name, a.Address, a.Allow); err != nil {
				return nil, err
			}
			s.changed(as, OpTrunkAdd, "trunk", a.Name)
			t, _ := s.dir.Snapshot().Trunk(a.Name)
			return trunkView(t), nil
		}),
		OpTrunkList: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
			snap, _, err := s.may(as, acl.TrunkList)
			if err != nil {
				return nil, err
			}
			out := []TrunkView{}
			for _, t := range snap.Trunks() {
				out = append(out, trunkView(t))
			}
			return out, nil
		}),
		OpTrunkRemove: typed(func(ctx context.Context, s *Service, as string, a TrunkArgs) (any, error) {
			if err := s.dir.RemoveTrunk(as, a.Name); err != nil {
				return nil, err
			}
			s.changed(as, OpTrunkRemove, "trunk", a.Name)
			return Done{"removed trunk " + a.Name}, nil
		}),
	}
}

func trunkView(t acl.Trunk) TrunkView {
	return TrunkView{Name: t.Name, Address: t.Address, Allow: append([]string{}, t.Allow...)}
}
