package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of a delivery.
const (
	HeaderSignature = "Partyline-Signature" // t=UNIX,v1=HEX
	HeaderEventID   = "Partyline-Event-Id"  // the body's id: a retried event keeps it
)

// Sign is the Partyline-Signature value for body sent at t:
// "t=UNIX,v1=HEX", HEX being HMAC-SHA256 keyed with the secret (the hex
// string as printed, its bytes) over "UNIX.body" — Stripe's scheme.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ErrBadSignature: a signature header that does not verify.
var ErrBadSignature = errors.New("bad webhook signature")

// Verify checks a Partyline-Signature header against the body as a
// receiver does: a v1 value matches (compared in constant time) and its
// timestamp is within tolerance of now (0: not checked). It returns the
// signed time.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) (time.Time, error) {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return time.Time{}, ErrBadSignature
	}
	t := time.Unix(sec, 0)
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		ok = hmac.Equal(s, want) || ok
	}
	if !ok {
		return t, ErrBadSignature
	}
	if tolerance > 0 && (now.Sub(t) > tolerance || t.Sub(now) > tolerance) {
		return t, errors.Join(ErrBadSignature, errors.New("timestamp outside the tolerance"))
	}
	return t, nil
}
