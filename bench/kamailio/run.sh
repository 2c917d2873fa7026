#!/usr/bin/env bash
# run.sh: partyline and Kamailio side by side, on the same SIPp scenarios
# and the same measuring code (bench/lib.sh): registrations (bench/reg.sh)
# and forked calls to three devices (bench/fork3.sh), each ramped until a
# call fails, the rate falls behind, or p99 passes 200 ms. Prints each
# run's table and a summary: partyline's figure divided by Kamailio's.
#
# Kamailio comes from the Debian package, installed when missing (root).
# Its configuration is kamailio.cfg next to this script; it listens on a
# free loopback port picked at run time.
#
# Every run takes the lock /tmp/partyline-bench.lock (flock), so it never
# overlaps another heavy run that takes it too.
#
# Usage: bench/kamailio/run.sh [reg|fork3]...   (default: both)
# Environment: REG_RATES, FORK_RATES (the ramps, total per second),
#   STEP_SECONDS (10), KAM_CHILDREN (UDP workers: reg.sh's default 4,
#   fork3.sh's 1), OUT (a folder for the full logs; default a temporary one,
#   kept), LOCK (/tmp/partyline-bench.lock).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench=$(dirname "$here")
LOCK=${LOCK:-/tmp/partyline-bench.lock}
REG_RATES=${REG_RATES:-2000 4000 6000 8000 9000 10000 11000 12000 14000 16000 18000}
FORK_RATES=${FORK_RATES:-200 400 600 800 900 1000 1100 1200 1400 1600}
if [ $# -gt 0 ]; then scenarios=("$@"); else scenarios=(reg fork3); fi

if ! command -v kamailio >/dev/null; then
	[ "$(id -u)" = 0 ] || { echo "run.sh: kamailio missing: apt-get install kamailio (as root)" >&2; exit 1; }
	echo "installing kamailio (Debian package)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kamailio >/dev/null
fi
for tool in sipp flock bc jq; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (apt-get install sip-tester util-linux bc jq)" >&2; exit 1; }
done
OUT=${OUT:-$(mktemp -d /tmp/partyline-kamailio.XXXXXX)}
mkdir -p "$OUT"
echo "$(kamailio -v | head -1) (Debian package $(dpkg-query -W -f '${Version}' kamailio 2>/dev/null || echo '?')); logs in $OUT"

# run NAME TARGET SCRIPT RATES: one ramp under the lock, bounded in time
# (30 min); its output is shown and kept in OUT/NAME-TARGET.log.
run() {
	local name=$1 target=$2 script=$3 rates=$4 rc=0
	echo
	echo "=== $name, $target ($(date -u +%FT%TZ))"
	# shellcheck disable=SC2086 # rates: words
	TARGET=$target timeout 1800 flock "$LOCK" "$bench/$script" $rates 2>&1 | tee "$OUT/$name-$target.log" || rc=$?
	[ "$rc" = 0 ] || echo "run.sh: $name against $target exited $rc"
}
for s in "${scenarios[@]}"; do
	case $s in
	reg) run reg partyline reg.sh "$REG_RATES"; run reg kamailio reg.sh "$REG_RATES" ;;
	fork3) run fork3 partyline fork3.sh "$FORK_RATES"; run fork3 kamailio fork3.sh "$FORK_RATES" ;;
	*) echo "run.sh: unknown scenario $s (reg or fork3)" >&2; exit 2 ;;
	esac
done

# The summary, from each run's "result:" line (and fork3's fan-out line).
field() { grep '^result: ' "$1" 2>/dev/null | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
fanout() {
	grep -o 'last p50 [^ ]* p90 [^ ]* p99 [^ ;]*' "$1" 2>/dev/null | head -1 | sed 's/^last //' | tr -d '\n'
	grep -o 'steal during the fan-out step: [0-9.]* %' "$1" 2>/dev/null | head -1 | sed 's/^/ (hypervisor /; s/$/)/'
}
echo
echo "=== summary: highest rate held with 0 failures (p50/p99 ms; server CPU % of one core; peak MiB)"
printf '%-6s %-34s %-34s %s\n' bench partyline kamailio "partyline / kamailio"
for s in "${scenarios[@]}"; do
	p=$OUT/$s-partyline.log k=$OUT/$s-kamailio.log
	ph=$(field "$p" held) kh=$(field "$k" held)
	ratio=-
	[ -n "$ph" ] && [ -n "$kh" ] && [ "$kh" != 0 ] && ratio=$(echo "scale=2; $ph / $kh" | bc)
	printf '%-6s %-34s %-34s %s\n' "$s" \
		"${ph:-?}/s ($(field "$p" p50_ms)/$(field "$p" p99_ms); $(field "$p" server_cpu) %; $(field "$p" peak_mib))" \
		"${kh:-?}/s ($(field "$k" p50_ms)/$(field "$k" p99_ms); $(field "$k" server_cpu) %; $(field "$k" peak_mib))" "$ratio"
	if [ "$s" = fork3 ]; then
		echo "       fan-out at the first step (INVITE in -> last branch INVITE out): partyline $(fanout "$p"), kamailio $(fanout "$k")"
	fi
done
echo "load average at each run's start: $(for f in "$OUT"/*.log; do printf '%s %s; ' "$(basename "$f" .log)" "$(field "$f" load_at_start)"; done)"
