// Package guard keeps what a source of requests gets before it proves who
// it is, for SIP and the HTTP API alike, so one table counts both: bans
// after failed authentications (per source IP and user name, and per IP)
// and token buckets per IP. Every table is bounded in size and pruned by
// its owner's sweep. It imports nothing of partyline.
package guard

import (
	"net/netip"
	"sync"
	"time"
)

// Bans counts failed authentications, each under its source IP and user
// name: more than threshold for one user from one IP within window bans
// that user from that IP for banFor, so one phone with a wrong password
// behind an office's NAT locks out no one else; more than sourceThreshold
// for any users from one IP bans the IP (someone trying names). Only
// failures that prove someone tried count (for SIP, with a nonce we sent
// to that IP), and SIP never counts a trunk's addresses.
type Bans struct {
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

func NewBans(threshold, sourceThreshold int, window, banFor time.Duration) *Bans {
	return &Bans{threshold: threshold, sourceThreshold: sourceThreshold, window: window, banFor: banFor, src: map[banKey]*banEntry{}}
}

// Banned reports whether ip is banned now, as a whole or for user (when
// user is not "").
func (b *Bans) Banned(ip netip.Addr, user string, now time.Time) bool {
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

// Fail records a failure of user ("" for none named) from ip; it returns
// what this failure started a ban of: the user from ip, the whole ip, or
// neither.
func (b *Bans) Fail(ip netip.Addr, user string, now time.Time) (userBan, sourceBan bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if user != "" {
		userBan = b.count(banKey{ip, user}, b.threshold, now)
	}
	sourceBan = b.count(banKey{ip: ip}, b.sourceThreshold, now)
	return userBan, sourceBan
}

func (b *Bans) count(k banKey, threshold int, now time.Time) bool {
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

// Ban bans ip as a whole for banFor from now (a flood); false when it
// already was.
func (b *Bans) Ban(ip netip.Addr, now time.Time) bool {
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

// Prune forgets entries with nothing recent.
func (b *Bans) Prune(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pruneLocked(now)
}

func (b *Bans) pruneLocked(now time.Time) {
	for k, e := range b.src {
		recent := len(e.failures) > 0 && now.Sub(e.failures[len(e.failures)-1]) < b.window
		if !recent && !now.Before(e.until) {
			delete(b.src, k)
		}
	}
}

// Limiter is a token bucket per source IP: rate tokens a second, at most
// burst saved up. It bounds what a source gets without proving who it is
// (challenges, OPTIONS answers).
type Limiter struct {
	rate, burst float64

	mu sync.Mutex
	m  map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func NewLimiter(rate float64, burst int) *Limiter {
	return &Limiter{rate: rate, burst: float64(burst), m: map[netip.Addr]*bucket{}}
}

// Allow takes a token for ip; false when it has none left. A limiter with
// rate < 0 allows everything.
func (l *Limiter) Allow(ip netip.Addr, now time.Time) bool {
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

// Prune forgets sources whose bucket is full again.
func (l *Limiter) Prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
}

func (l *Limiter) pruneLocked(now time.Time) {
	for ip, b := range l.m {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.m, ip)
		}
	}
}

// BannedFor is Banned with how long the ban has left.
func (b *Bans) BannedFor(ip netip.Addr, user string, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.src[banKey{ip: ip}]; e != nil && now.Before(e.until) {
		return e.until.Sub(now), true
	}
	if user == "" {
		return 0, false
	}
	if e := b.src[banKey{ip, user}]; e != nil && now.Before(e.until) {
		return e.until.Sub(now), true
	}
	return 0, false
}

// BanFor is how long a ban lasts.
func (b *Bans) BanFor() time.Duration { return b.banFor }
