package acl

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"strconv"
	"strings"
)

// maxNameLen bounds user and trunk names (the SIP user part of an AOR).
const maxNameLen = 64

// CheckName validates a user or trunk name: 1 to 64 of [a-z0-9._-],
// starting with a letter or digit.
func CheckName(kind, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s name", ErrInvalid, kind)
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("%w: %s name %q is longer than %d characters", ErrInvalid, kind, s, maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			return fmt.Errorf("%w: bad %s name %q: use lower-case letters, digits and . _ - (starting with a letter or digit)", ErrInvalid, kind, s)
		}
	}
	return nil
}

// NormalizeE164 returns the E.164 form (+ then 8 to 15 digits, the first
// not 0) of a number typed with or without +, spaces, dashes, dots or
// parentheses.
func NormalizeE164(s string) (string, error) {
	var b strings.Builder
	b.Grow(16)
	b.WriteByte('+')
	digits := 0
	for i, c := range strings.TrimSpace(s) {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
			digits++
		case c == '+' && i == 0:
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", badE164(s)
		}
	}
	out := b.String()
	if digits < 8 || digits > 15 || out[1] == '0' {
		return "", badE164(s)
	}
	return out, nil
}

func badE164(s string) error {
	return fmt.Errorf("%w: bad number %q: use E.164, + then 8 to 15 digits, e.g. +15551230001", ErrInvalid, s)
}

// CheckEmail accepts an empty email or a bare address.
func CheckEmail(s string) error {
	if s == "" {
		return nil
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return fmt.Errorf("%w: bad email %q: use a bare address like alice@example.com", ErrInvalid, s)
	}
	return nil
}

// MinPasswordLen is the shortest SIP password accepted.
const MinPasswordLen = 8

// CheckPassword refuses passwords too short to survive guessing. The
// message never repeats the password.
func CheckPassword(pw string) error {
	if len(pw) < MinPasswordLen {
		return fmt.Errorf("%w: password too short: use at least %d characters", ErrInvalid, MinPasswordLen)
	}
	if strings.ContainsAny(pw, "\r\n\x00") {
		return fmt.Errorf("%w: password contains a line break or NUL", ErrInvalid)
	}
	return nil
}

// CheckHostPort validates a trunk's outbound address: a host name or IP,
// and a port from 1 to 65535.
func CheckHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Errorf("%w: bad address %q: use HOST:PORT, e.g. sip.carrier.example:5060 or [2001:db8::1]:5060", ErrInvalid, s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: bad port in %q: use 1 to 65535", ErrInvalid, s)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !validHostname(host) {
		return fmt.Errorf("%w: bad host in %q: use an IP address or a DNS name", ErrInvalid, s)
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
