package guard

import (
	"net/netip"
	"testing"
	"time"
)

func TestBans(t *testing.T) {
	b := NewBans(2, 4, time.Minute, 5*time.Minute)
	ip := netip.MustParseAddr("192.0.2.1")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		u, s := b.Fail(ip, "mia", now)
		if u != (i == 2) || s {
			t.Fatalf("failure %d of mia: user ban %v, source ban %v", i+1, u, s)
		}
	}
	if !b.Banned(ip, "mia", now) || b.Banned(ip, "olga", now) || b.Banned(ip, "", now) {
		t.Fatal("mia, and only mia, from that source should be banned")
	}
	// Failures without a user name count towards the source only, once.
	u, s := b.Fail(ip, "", now)
	if u || s {
		t.Fatalf("4th failure at the source: %v %v", u, s)
	}
	if _, s = b.Fail(ip, "", now); !s {
		t.Fatal("the 5th failure from one source should ban it")
	}
	if left, ok := b.BannedFor(ip, "olga", now.Add(time.Minute)); !ok || left != 4*time.Minute {
		t.Fatalf("olga from the banned source: %v %v", left, ok)
	}
	if b.Banned(ip, "olga", now.Add(5*time.Minute)) {
		t.Fatal("the ban should have ended")
	}
	b.Prune(now.Add(time.Hour))
	if len(b.src) != 0 {
		t.Fatalf("%d entries left after prune", len(b.src))
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(1, 3)
	ip := netip.MustParseAddr("192.0.2.2")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if !l.Allow(ip, now) {
			t.Fatalf("token %d of the burst refused", i+1)
		}
	}
	if l.Allow(ip, now) {
		t.Fatal("a 4th at once allowed")
	}
	if !l.Allow(ip, now.Add(time.Second)) {
		t.Fatal("a second later, one more should be allowed")
	}
	if NewLimiter(-1, 0).Allow(ip, now) != true {
		t.Fatal("a negative rate allows everything")
	}
}
