package sip

// What a source gets before it proves who it is: bans after failed
// authentications, and a token bucket for requests without valid
// credentials. Both are keyed by source IP, bounded in size and pruned by
// the sweep.

import (
	"net/netip"
	"sync"
	"time"
)

// bans counts failed authentications, each under its source IP and user
// name: more than threshold for one user from one IP within window bans
// that user from that IP for banFor, so one phone with a wrong password
// behind an office's NAT locks out no one else; more than sourceThreshold
// for any users from one IP bans the IP (someone trying names). Only
// failures with a nonce we sent to that IP count (see verify), and the
// caller never counts a trunk's addresses.
type bans struct {
	threshold       int
	sourceThreshold int
	window          time.Duration
	banFor          time.Duration

	mu  sync.Mutex
	src map[banKey]*banEntry
}

// banKey is a source IP and a user name ("" for the IP as a whole).
type banKey struct {
	ip   netip.Addr
	user string
}

type banEntry struct {
	failures []time.Time
	until    time.Time
}

// maxBanEntries bounds the table; when full, entries with nothing recent
// are dropped first.
const maxBanEntries = 100000

func newBans(threshold, sourceThreshold int, window, banFor time.Duration) *bans {
	return &bans{threshold: threshold, sourceThreshold: sourceThreshold, window: window, banFor: banFor, src: map[banKey]*banEntry{}}
}

// banned reports whether ip is banned now, as a whole or for user (when
// user is not "").
func (b *bans) banned(ip netip.Addr, user string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.src[banKey{ip: ip}]; e != nil && now.Before(e.until) {
		return true
	}
	if user == "" {
		return false
	}
	e := b.src[banKey{ip, user}]
	return e != nil && now.Before(e.until)
}

// fail records a failure of user from ip; it returns what this failure
// started a ban of: the user from ip, the whole ip, or neither.
func (b *bans) fail(ip netip.Addr, user string, now time.Time) (userBan, sourceBan bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	userBan = b.count(banKey{ip, user}, b.threshold, now)
	sourceBan = b.count(banKey{ip: ip}, b.sourceThreshold, now)
	return userBan, sourceBan
}

func (b *bans) count(k banKey, threshold int, now time.Time) bool {
	e := b.src[k]
	if e == nil {
		if len(b.src) >= maxBanEntries {
			b.pruneLocked(now)
			if len(b.src) >= maxBanEntries {
				return false // every entry is recent: count no more until some age
			}
		}
		e = &banEntry{}
		b.src[k] = e
	}
	if now.Before(e.until) {
		return false
	}
	keep := e.failures[:0]
	for _, t := range e.failures {
		if now.Sub(t) < b.window {
			keep = append(keep, t)
		}
	}
	e.failures = append(keep, now)
	if len(e.failures) > threshold {
		e.until = now.Add(b.banFor)
		e.failures = nil
		return true
	}
	return false
}

// ban bans ip as a whole for banFor from now (a flood); false when it
// already was.
func (b *bans) ban(ip netip.Addr, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := banKey{ip: ip}
	e := b.src[k]
	if e == nil {
		if len(b.src) >= maxBanEntries {
			b.pruneLocked(now)
		}
		e = &banEntry{}
		b.src[k] = e
	}
	if now.Before(e.until) {
		return false
	}
	e.until, e.failures = now.Add(b.banFor), nil
	return true
}

// prune forgets entries with nothing recent.
func (b *bans) prune(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pruneLocked(now)
}

func (b *bans) pruneLocked(now time.Time) {
	for k, e := range b.src {
		recent := len(e.failures) > 0 && now.Sub(e.failures[len(e.failures)-1]) < b.window
		if !recent && !now.Before(e.until) {
			delete(b.src, k)
		}
	}
}

// limiter is a token bucket per source IP: rate tokens a second, at most
// burst saved up. It bounds what a source gets without proving who it is
// (challenges, OPTIONS answers).
type limiter struct {
	rate, burst float64

	mu sync.Mutex
	m  map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), m: map[netip.Addr]*bucket{}}
}

// allow takes a token for ip; false when it has none left. A limiter with
// rate < 0 allows everything.
func (l *limiter) allow(ip netip.Addr, now time.Time) bool {
	if l.rate < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[ip]
	if b == nil {
		if len(l.m) >= maxBanEntries {
			l.pruneLocked(now)
			if len(l.m) >= maxBanEntries {
				return false
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.m[ip] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune forgets sources whose bucket is full again.
func (l *limiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
}

func (l *limiter) pruneLocked(now time.Time) {
	for ip, b := range l.m {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.m, ip)
		}
	}
}
