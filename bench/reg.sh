#!/usr/bin/env bash
# reg.sh: registrations per second with digest, SIPp against the built
# partyline, everything on this machine and on loopback.
#
# Each registration is one SIPp call of testdata/sipp/register.xml: REGISTER,
# 401, REGISTER with MD5 digest credentials, 200 (the binding is committed to
# the data file before the 200 is sent). GENERATORS SIPp processes share the
# load; the total rate climbs through RATES, STEP_SECONDS at each step, and
# stops at the first step that fails a call or falls behind its rate. The
# last step held with zero failures is the result.
#
# Usage: bench/reg.sh [RATE...]       (total registrations/s per step)
# Environment: USERS (10000), GENERATORS (8), STEP_SECONDS (10), TRANSPORT
#   (u1: UDP, one socket per generator; t1: one TCP connection per generator),
#   KEEP=1 keeps the work folder (server log, SIPp logs, data); PERF=1 also
#   records the server with perf during each step (step-N-RATE/perf.data).
# Needs: go, sipp (Debian package sip-tester), bc, ss.
set -euo pipefail

USERS=${USERS:-10000}
GENERATORS=${GENERATORS:-8}
TRANSPORT=${TRANSPORT:-u1}
STEP_SECONDS=${STEP_SECONDS:-10}
if [ $# -gt 0 ]; then RATES=("$@"); else RATES=(2000 3000 4000 4500 5000 5500 6000 7000 8000 9000 10000); fi

root=$(cd "$(dirname "$0")/.." && pwd)
scenario=$root/testdata/sipp/register.xml
command -v sipp >/dev/null || { echo "reg.sh: sipp not found: apt-get install sip-tester" >&2; exit 1; }

work=$(mktemp -d /tmp/partyline-bench.XXXXXX)
server=""
sipps=()
cleanup() {
	for p in "${sipps[@]}" ${perf_pid:-}; do kill "$p" 2>/dev/null || true; done
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
	if [ "${KEEP:-}" = 1 ] || [ "${PERF:-}" = 1 ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin=$work/partyline
data=$work/data
(cd "$root" && go build -o "$bin" ./cmd/partyline)

"$bin" --data "$data" serve --sip 127.0.0.1:0 2>"$work/server.log" &
server=$!
# The server logs its ready line within a second; a bounded wait for it.
for _ in $(seq 100); do
	grep -q 'msg="partyline ready"' "$work/server.log" && break
	kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
	sleep 0.1
done
sip=$(grep -o 'sip=[^ ]*' "$work/server.log" | head -1 | cut -d= -f2)
[ -n "$sip" ] || { echo "reg.sh: server not ready" >&2; cat "$work/server.log" >&2; exit 1; }

# Users through the CLI, which talks to the running server's admin socket.
t0=$(date +%s.%N)
seq 1 "$USERS" | xargs -P 4 -I{} "$bin" --data "$data" user add u{} --password password-{} >/dev/null
t1=$(date +%s.%N)
{ echo SEQUENTIAL; seq 1 "$USERS" | sed 's/.*/u&;password-&/'; } >"$work/users.csv"

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# This shell's waited-for children: the SIPp generators of each step.
sipp_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }
machine() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; } # all, idle+iowait
udp_drops() { awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $6}' /proc/net/snmp; } # RcvbufErrors, all sockets

echo "partyline registrations/s: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(go version | cut -d' ' -f3)"
echo "server $sip, transport $TRANSPORT, $USERS users (added in $(echo "$t1 - $t0" | bc) s), $GENERATORS SIPp generators, $STEP_SECONDS s per step"
echo "CPU in % of one core (machine: every process and the kernel; the machine has $(($(nproc) * 100))%);"
echo "UDP drops: datagrams the kernel dropped on full receive buffers"
printf '%8s %9s %9s %7s %11s %9s %10s %10s %s\n' target achieved calls failed "server CPU" "SIPp CPU" "machine" "UDP drops" "SIPp exit codes"

# SIPp's default local port is 5060 and up, which generators started at the
# same moment race for: give each its own, below the ephemeral range, never
# reused between steps (TCP TIME_WAIT).
next_port=20000
held=0
n=0
for rate in "${RATES[@]}"; do
	n=$((n + 1))
	ss -Htuan | awk '{n = split($5, a, ":"); print a[n]}' | sort -u >"$work/ports-in-use"
	per=$((rate / GENERATORS))
	count=$((per * STEP_SECONDS))
	step=$work/step-$n-$rate
	mkdir -p "$step"
	s0=$(cpu_ticks "$server")
	c0=$(sipp_ticks)
	d0=$(udp_drops)
	read -r m0 i0 < <(machine)
	w0=$(date +%s.%N)
	sipps=()
	if [ "${PERF:-}" = 1 ]; then
		# perf's own CPU then counts as the generators'.
		perf record -q -F 499 -g -p "$server" -o "$step/perf.data" -- sleep "$STEP_SECONDS" 2>/dev/null &
		perf_pid=$!
	fi
	for g in $(seq "$GENERATORS"); do
		mkdir -p "$step/$g"
		while grep -qx "$next_port" "$work/ports-in-use"; do next_port=$((next_port + 1)); done
		port=$next_port
		next_port=$((next_port + 1))
		(cd "$step/$g" && exec sipp -sf "$scenario" -inf "$work/users.csv" "$sip" -t "$TRANSPORT" \
			-i 127.0.0.1 -p "$port" -mi 127.0.0.1 -r "$per" -m "$count" \
			-timeout "$((STEP_SECONDS + 10))s" -timeout_error -nostdin >stdout 2>stderr) &
		sipps+=($!)
	done
	codes=""
	for p in "${sipps[@]}"; do
		rc=0
		wait "$p" || rc=$?
		codes="$codes $rc"
	done
	sipps=()
	w1=$(date +%s.%N)
	s1=$(cpu_ticks "$server")
	c1=$(sipp_ticks)
	d1=$(udp_drops)
	read -r m1 i1 < <(machine)
	if [ "${PERF:-}" = 1 ]; then wait "$perf_pid" || true; fi
	ok=0 failed=0
	for g in $(seq "$GENERATORS"); do
		o=$(awk -F'|' '/Successful call/{gsub(/ /,"",$3); print $3}' "$step/$g/stdout" | tail -1)
		f=$(awk -F'|' '/Failed call/{gsub(/ /,"",$3); print $3}' "$step/$g/stdout" | tail -1)
		ok=$((ok + ${o:-0}))
		failed=$((failed + ${f:-0}))
	done
	wall=$(echo "$w1 - $w0" | bc)
	achieved=$(echo "$ok / $wall" | bc)
	srv_cpu=$(echo "100 * ($s1 - $s0) / $ticks / $wall" | bc)
	sipp_cpu=$(echo "100 * ($c1 - $c0) / $ticks / $wall" | bc)
	busy=$(echo "100 * $(nproc) * (($m1 - $m0) - ($i1 - $i0)) / ($m1 - $m0)" | bc)
	printf '%8d %9d %9d %7d %10d%% %8d%% %9d%% %10d %s\n' "$rate" "$achieved" "$ok" "$failed" "$srv_cpu" "$sipp_cpu" \
		"$busy" $((d1 - d0)) "$codes"
	# Held: every call succeeded and the step's rate was met within 5 %.
	if [ "$failed" -ne 0 ] || [ "$ok" -ne $((count * GENERATORS)) ] || [ "$achieved" -lt $((rate * 95 / 100)) ] ||
		[ -n "$(echo "$codes" | tr -d ' 0')" ]; then
		break
	fi
	held=$rate
done

bindings=$("$bin" --data "$data" -o json registrations | grep -c '"contact"' || true)
peak=$(awk '/VmHWM/{print $2 / 1024 " MiB"}' "/proc/$server/status")
kill -TERM "$server"
wait "$server" || true
server=""
stored=$("$bin" --data "$data" -o json registrations | grep -c '"contact"' || true)
echo "highest rate held with 0 failures: $held registrations/s"
echo "server peak RSS (VmHWM): $peak; bindings live: $bindings, read back from the data file after stopping: $stored"
[ "$bindings" = "$stored" ] || { echo "reg.sh: bindings lost on stop" >&2; exit 1; }
