#!/usr/bin/env bash
# perf-groups.sh: where the server's CPU went in a perf recording made by
# "PERF=1 bench/reg.sh", grouped by what each sample's call stack passes
# through (first matching group wins, in the order below).
#
# Usage: bench/perf-groups.sh /tmp/partyline-bench.XXXXXX/step-1-4000/perf.data
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 perf.data" >&2; exit 2; }

perf script -i "$1" -F tid,ip,sym 2>/dev/null | awk '
function flush() {
	if (stack == "") return
	n++
	if (stack ~ /gcBgMarkWorker/) g = "GC (background mark)"
	else if (stack ~ /sip\.\(\*Server\)\.admit/) g = "admission, including its own parse"
	else if (stack ~ /parseAndHandle/) g = "sipgo parse of the same datagram"
	else if (stack ~ /readListenerConnection|\(\*packetConn\)\.ReadFrom/) g = "UDP read loop, other (recvfrom)"
	else if (stack ~ /bbolt/) g = "bbolt commit (batch, JSON, fsync)"
	else if (stack ~ /nonces\.verify/) g = "digest verification"
	else if (stack ~ /nonces\.challenges/) g = "challenge building"
	else if (stack ~ /ServerTx\)\.Respond/) g = "responses (sipgo Respond, sendto)"
	else if (stack ~ /sip\.\(\*Server\)\.register/) g = "registrar, other"
	else if (stack ~ /emiago\/sipgo/) g = "sipgo transactions (create, timers, FSM)"
	else g = "scheduler, timers, the rest"
	count[g]++
	if (stack ~ /runtime\.mallocgc/) alloc++
	stack = ""
}
/^[^ \t]/ { flush(); next }      # a sample header line
/^$/ { flush(); next }
{ stack = stack " " $2 }
END {
	flush()
	for (g in count) printf "%5.1f%%  %s\n", 100 * count[g] / n, g | "sort -rn"
	close("sort -rn")
	printf "(allocation anywhere in the stack: %.1f%% of %d samples)\n", 100 * alloc / n, n
}'
