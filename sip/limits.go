package sip

// Bounds on what one caller or one subscriber may hold at once, and the
// rate-limited security log lines they write when someone hits them.

import (
	"net/netip"
	"sync"
	"time"
)

// Limits bound what one source, number or user may hold at once in
// voicemail and message waiting (issue 14). It is part of Server; each
// comment states the default used when the field is zero.
type Limits struct {
	// VoicemailPerSource bounds the voicemail calls in progress from one
	// source IP address; the next is answered 486 Busy Here. Calls from a
	// trusted trunk count only towards VoicemailPerNumber: a carrier brings
	// every outside caller from its few addresses. Default 4.
	VoicemailPerSource int
	// VoicemailPerNumber bounds the voicemail calls in progress to one
	// shared number; the next is answered 486 Busy Here. Default 10.
	VoicemailPerNumber int
	// SubscriptionsPerDevice bounds one user's message-summary
	// subscriptions from one device (the SUBSCRIBE's source IP and port,
	// where its NOTIFYs go); the next is answered 403. Default 4.
	SubscriptionsPerDevice int
	// SubscriptionsPerUser bounds one user's subscriptions over all devices;
	// the next is answered 403. Default 32.
	SubscriptionsPerUser int
	// MaxSubscriptionExpires caps a subscription's life: a longer Expires is
	// lowered to it in the 200 and the NOTIFYs (RFC 6665 §4.2.1.1); shorter
	// than Server.MinExpires is answered 423. Default 3600 s.
	MaxSubscriptionExpires time.Duration
	// NotifiesInFlight bounds the NOTIFY transactions in flight to one
	// address; more wait, and a subscription's waiting NOTIFYs fold into
	// one that tells the state as it is when sent. Default 2.
	NotifiesInFlight int
	// NotifyTimeout is how long a NOTIFY waits for its final response
	// (retransmitted over UDP meanwhile); a NOTIFY that gets none, or a
	// failure, ends its subscription (RFC 6665 §4.2.2). Default 32 s
	// (Timer F).
	NotifyTimeout time.Duration
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (l *Limits) vmPerSource() int   { return orDefault(l.VoicemailPerSource, 4) }
func (l *Limits) vmPerNumber() int   { return orDefault(l.VoicemailPerNumber, 10) }
func (l *Limits) subsPerDevice() int { return orDefault(l.SubscriptionsPerDevice, 4) }
func (l *Limits) subsPerUser() int   { return orDefault(l.SubscriptionsPerUser, 32) }
func (l *Limits) maxSubExpires() time.Duration {
	return orDefault(l.MaxSubscriptionExpires, 3600*time.Second)
}
func (l *Limits) notifiesInFlight() int { return orDefault(l.NotifiesInFlight, 2) }
func (l *Limits) notifyTimeout() time.Duration {
	return orDefault(l.NotifyTimeout, 32*time.Second)
}

// vmAdmit counts a voicemail call from src (the zero Addr for a trunk's
// call) to number against the caps; false when over one, with the cap's
// name. A call admitted must be released with vmRelease.
func (s *Server) vmAdmit(src netip.Addr, number string) (bool, string) {
	v := s.vm
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.bySource == nil {
		v.bySource, v.byNumber = map[netip.Addr]int{}, map[string]int{}
	}
	if src.IsValid() && v.bySource[src] >= s.vmPerSource() {
		return false, "source"
	}
	if v.byNumber[number] >= s.vmPerNumber() {
		return false, "number"
	}
	if src.IsValid() {
		v.bySource[src]++
	}
	v.byNumber[number]++
	return true, ""
}

// vmRelease ends a call vmAdmit counted.
func (s *Server) vmRelease(src netip.Addr, number string) {
	v := s.vm
	v.mu.Lock()
	defer v.mu.Unlock()
	if src.IsValid() {
		if v.bySource[src]--; v.bySource[src] <= 0 {
			delete(v.bySource, src)
		}
	}
	if v.byNumber[number]--; v.byNumber[number] <= 0 {
		delete(v.byNumber, number)
	}
}

// limitLogs rate-limits the security lines an attacker can trigger by
// hitting a limit: one line per event and source every limitLogEvery; the
// next line says how many were left out. It tracks at most limitLogKeys
// pairs; while that many are fresh, lines of new pairs are left out
// uncounted.
type limitLogs struct {
	mu      sync.Mutex
	last    map[string]time.Time
	dropped map[string]int
}

const (
	limitLogEvery = 10 * time.Second
	limitLogKeys  = 1024
)

// allow reports whether a line for key may go out at now, and how many
// were left out before it.
func (l *limitLogs) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.dropped = map[string]time.Time{}, map[string]int{}
	}
	if t, ok := l.last[key]; ok && now.Sub(t) < limitLogEvery {
		l.dropped[key]++
		return false, 0
	}
	if _, ok := l.last[key]; !ok && len(l.last) >= limitLogKeys {
		for k, t := range l.last {
			if now.Sub(t) >= limitLogEvery {
				delete(l.last, k)
				delete(l.dropped, k)
			}
		}
		if len(l.last) >= limitLogKeys {
			return false, 0
		}
	}
	n := l.dropped[key]
	l.last[key] = now
	delete(l.dropped, key)
	return true, n
}

// securityEvent logs a security event caused by src, rate-limited per event
// and source (see limitLogs).
func (s *Server) securityEvent(logs *limitLogs, event, src string, args ...any) {
	ok, dropped := logs.allow(event+"\x00"+src, s.Now())
	if !ok {
		return
	}
	args = append([]any{"event", event, "src", src}, args...)
	if dropped > 0 {
		args = append(args, "suppressed", dropped)
	}
	s.Log.Warn("security", args...)
}
