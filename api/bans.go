package api

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// bans counts failed logins (and unknown API tokens) per source IP and
// user name, with the thresholds and the log line of SIP's digest bans
// (sip/bans.go): more than threshold for one user from one IP within window
// bans that user from that IP for banFor; more than sourceThreshold for any
// users from one IP bans the IP. The two tables are separate for now: a
// source that fails over SIP and over HTTP is counted in each.
type bans struct {
	threshold, sourceThreshold int
	window, banFor             time.Duration
	log                        *slog.Logger

	mu   sync.Mutex
	m    map[banKey]*banEntry
	logs map[netip.Addr]*logBucket // security lines per source: 5, then one a second
}

type banKey struct {
	ip   netip.Addr
	user string // "" for the IP as a whole
}

type banEntry struct {
	failures []time.Time
	until    time.Time
}

type logBucket struct {
	tokens float64
	last   time.Time
}

// maxBanEntries bounds the table; entries with nothing recent go first.
const maxBanEntries = 100000

func newBans(threshold, sourceThreshold int, window, banFor time.Duration, log *slog.Logger) *bans {
	return &bans{threshold: threshold, sourceThreshold: sourceThreshold, window: window, banFor: banFor, log: log,
		m: map[banKey]*banEntry{}, logs: map[netip.Addr]*logBucket{}}
}

// banned reports whether ip is banned now, as a whole or (user not "")
// for user; retry is how long the ban lasts.
func (b *bans) banned(ip netip.Addr, user string, now time.Time) (retry time.Duration, banned bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.m[banKey{ip: ip}]; e != nil && now.Before(e.until) {
		return e.until.Sub(now), true
	}
	if user == "" {
		return 0, false
	}
	if e := b.m[banKey{ip, user}]; e != nil && now.Before(e.until) {
		return e.until.Sub(now), true
	}
	return 0, false
}

// fail records a failure of user ("" when no user was named) from ip and
// logs the bans it starts.
func (b *bans) fail(ip netip.Addr, user string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if user != "" && b.count(banKey{ip, user}, b.threshold, now) {
		b.security(ip, now, "user", user, "for", b.banFor.String())
	}
	if b.count(banKey{ip: ip}, b.sourceThreshold, now) {
		b.security(ip, now, "for", b.banFor.String())
	}
}

func (b *bans) count(k banKey, threshold int, now time.Time) bool {
	e := b.m[k]
	if e == nil {
		if len(b.m) >= maxBanEntries {
			b.prune(now)
			if len(b.m) >= maxBanEntries {
				return false
			}
		}
		e = &banEntry{}
		b.m[k] = e
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
		e.until, e.failures = now.Add(b.banFor), nil
		return true
	}
	return false
}

func (b *bans) prune(now time.Time) {
	for k, e := range b.m {
		recent := len(e.failures) > 0 && now.Sub(e.failures[len(e.failures)-1]) < b.window
		if !recent && !now.Before(e.until) {
			delete(b.m, k)
		}
	}
	for ip, l := range b.logs {
		if now.Sub(l.last) > 10*time.Second {
			delete(b.logs, ip)
		}
	}
}

// security writes SIP's line for a ban, message "security", event
// auth_ban, the source IP, then kv; an attacker triggers these, so each
// source gets 5 in a row, then one a second.
func (b *bans) security(ip netip.Addr, now time.Time, kv ...any) {
	l := b.logs[ip]
	if l == nil {
		if len(b.logs) >= maxBanEntries {
			return
		}
		l = &logBucket{tokens: 5, last: now}
		b.logs[ip] = l
	}
	l.tokens = min(5, l.tokens+now.Sub(l.last).Seconds())
	l.last = now
	if l.tokens < 1 {
		return
	}
	l.tokens--
	b.log.Warn("security", append([]any{"event", "auth_ban", "src", ip.String()}, kv...)...)
}
