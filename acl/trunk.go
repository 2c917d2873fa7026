package acl

import (
	"fmt"
	"net/netip"
	"strings"
)

// Trunk is a carrier connection: where calls and texts to the outside go,
// and which source addresses are trusted as that carrier.
type Trunk struct {
	Name    string   `json:"name"`
	Address string   `json:"address"` // HOST:PORT for outbound requests
	Allow   []string `json:"allow"`   // canonical IP, IP:PORT or CIDR entries

	prefixes []netip.Prefix
	exact    []netip.AddrPort
}

// ParseAllow reads one trusted-source entry (IP, IP:PORT or CIDR) and
// returns it in canonical form.
func ParseAllow(s string) (string, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return "", fmt.Errorf("%w: bad source %q: port 0", ErrInvalid, s)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked().String(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()).String(), nil
	}
	return "", fmt.Errorf("%w: bad source %q: use an IP (192.0.2.10), IP:PORT (192.0.2.10:5060, [2001:db8::1]:5060) or CIDR (192.0.2.0/24)", ErrInvalid, s)
}

// compile prepares the matchers from Allow, which holds canonical entries.
func (t *Trunk) compile() {
	t.prefixes, t.exact = nil, nil
	for _, s := range t.Allow {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			t.exact = append(t.exact, ap)
		} else if p, err := netip.ParsePrefix(s); err == nil {
			t.prefixes = append(t.prefixes, p)
		}
	}
}

// Matches reports whether traffic from src is this carrier's: its IP is in
// an allowed prefix, or its IP and port equal an allowed IP:PORT.
func (t *Trunk) Matches(src netip.AddrPort) bool {
	a := src.Addr().Unmap()
	for _, e := range t.exact {
		if e.Addr() == a && e.Port() == src.Port() {
			return true
		}
	}
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
