package api

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/partyline/partyline/guard"
)

// bans counts failed logins (and unknown API tokens) per source IP and
// user name in the ban table shared with SIP's digest authentication
// (guard.Bans, when the server gives one: a source failing over either is
// counted once), and logs SIP's line for each ban it starts: message
// "security", event auth_ban, the source IP. An attacker triggers these:
// each source gets 5 lines in a row, then one a second.
type bans struct {
	*guard.Bans
	log  *slog.Logger
	logs *guard.Limiter
}

func newBans(shared *guard.Bans, threshold, sourceThreshold int, window, banFor time.Duration, log *slog.Logger) *bans {
	if shared == nil {
		shared = guard.NewBans(threshold, sourceThreshold, window, banFor)
	}
	return &bans{Bans: shared, log: log, logs: guard.NewLimiter(1, 5)}
}

// banned reports whether ip is banned now, as a whole or (user not "")
// for user; retry is how long the ban lasts.
func (b *bans) banned(ip netip.Addr, user string, now time.Time) (retry time.Duration, banned bool) {
	return b.BannedFor(ip, user, now)
}

// fail records a failure of user ("" when no user was named) from ip and
// logs the bans it starts.
func (b *bans) fail(ip netip.Addr, user string, now time.Time) {
	userBan, sourceBan := b.Fail(ip, user, now)
	if userBan {
		b.security(ip, now, "user", user, "for", b.BanFor().String())
	}
	if sourceBan {
		b.security(ip, now, "for", b.BanFor().String())
	}
}

func (b *bans) security(ip netip.Addr, now time.Time, kv ...any) {
	if !b.logs.Allow(ip, now) {
		return
	}
	b.log.Warn("security", append([]any{"event", "auth_ban", "src", ip.String()}, kv...)...)
}
