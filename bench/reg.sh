#!/usr/bin/env bash
# reg.sh: registrations per second with digest, SIPp against the built
# partyline (or Kamailio: TARGET=kamailio), everything on this machine and
# on loopback.
#
# Each registration is one SIPp call of testdata/sipp/register.xml: REGISTER,
# 401, REGISTER with MD5 digest credentials, 200 (partyline commits the
# binding to its data file before the 200; Kamailio keeps it in memory).
# GENERATORS SIPp processes share the load; the total rate climbs through
# RATES, STEP_SECONDS at each step, and stops at the first step that fails a
# call, falls behind its rate by more than 5 %, or whose p99 response time
# (first REGISTER to the final 200, SIPp's -trace_rtt, whole ms) passes
# P99_LIMIT_MS (200). The last step held is the result.
#
# Usage: bench/reg.sh [RATE...]       (total registrations/s per step)
# Environment: TARGET (partyline or kamailio: bench/kamailio/kamailio.cfg),
#   USERS (10000), GENERATORS (8), STEP_SECONDS (10), TRANSPORT (u1: UDP,
#   one socket per generator; t1: one TCP connection per generator),
#   P99_LIMIT_MS (200), KEEP=1 keeps the work folder (server log, SIPp logs,
#   data); PERF=1 also records the server with perf during each step
#   (step-N-RATE/perf.data; partyline only).
# Needs: go, sipp (Debian package sip-tester), bc, ss; kamailio for
#   TARGET=kamailio.
set -euo pipefail

TARGET=${TARGET:-partyline}
USERS=${USERS:-10000}
GENERATORS=${GENERATORS:-8}
TRANSPORT=${TRANSPORT:-u1}
STEP_SECONDS=${STEP_SECONDS:-10}
if [ $# -gt 0 ]; then RATES=("$@"); else RATES=(2000 3000 4000 5000 6000 7000 8000 9000 10000 12000 14000 16000); fi

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
root=$BENCH_ROOT
command -v sipp >/dev/null || { echo "reg.sh: sipp not found: apt-get install sip-tester" >&2; exit 1; }

work=$(mktemp -d /tmp/partyline-bench.XXXXXX)
pids=()
[ "${PERF:-}" = 1 ] && KEEP=1 # the recordings stay for perf-groups.sh
trap 'lib_cleanup "${perf_pid:-}"' EXIT
trap 'exit 130' INT TERM

load_at_start=$(lib_load)
lib_rtd "$root/testdata/sipp/register.xml" "$work/register.xml"
scenario=$work/register.xml
bin=$work/partyline
data=$work/data
t0=$(date +%s.%N)
if [ "$TARGET" = partyline ]; then
	(cd "$root" && go build -o "$bin" ./cmd/partyline)
	lib_start_partyline "$bin" "$data"
	# Users through the CLI, which talks to the running server's admin socket.
	t0=$(date +%s.%N)
	seq 1 "$USERS" | xargs -P 4 -I{} "$bin" --data "$data" user add u{} --password password-{} >/dev/null
	{ echo SEQUENTIAL; seq 1 "$USERS" | sed 's/.*/u&;password-&/'; } >"$work/users.csv"
elif [ "$TARGET" = kamailio ]; then
	lib_start_kamailio
	# kamailio.cfg checks the password "password-USER".
	{ echo SEQUENTIAL; seq 1 "$USERS" | sed 's/.*/u&;password-u&/'; } >"$work/users.csv"
else
	echo "reg.sh: TARGET is partyline or kamailio" >&2
	exit 2
fi
t1=$(date +%s.%N)

echo "load average at start: $load_at_start"
if [ "$TARGET" = kamailio ]; then version=$(kamailio -v | head -1 | cut -d' ' -f2-3); else version=$(go version | cut -d' ' -f3); fi
echo "$TARGET registrations/s: $(lib_machine), $version"
echo "server $sip, transport $TRANSPORT, $USERS users (added in $(echo "$t1 - $t0" | bc) s), $GENERATORS SIPp generators, $STEP_SECONDS s per step"
echo "CPU in % of one core (machine: every process and the kernel; the machine has $(($(nproc) * 100))%);"
echo "p50/p99: first REGISTER to the final 200, ms; UDP drops: datagrams the kernel dropped on full receive buffers"
printf '%8s %9s %9s %7s %6s %6s %11s %9s %10s %10s %8s %s\n' target achieved calls failed p50 p99 "server CPU" "SIPp CPU" "machine" "UDP drops" "mem MiB" "SIPp exit codes"

# SIPp's default local port is 5060 and up, which generators started at the
# same moment race for: give each its own, below the ephemeral range, never
# reused between steps (TCP TIME_WAIT).
next_port=20000
n=0
step() {
	local rate=$1 g codes=""
	n=$((n + 1))
	lib_ports_snapshot
	local per=$((rate / GENERATORS))
	local count=$((per * STEP_SECONDS))
	local step=$work/step-$n-$rate
	mkdir -p "$step"
	lib_measure_begin
	if [ "${PERF:-}" = 1 ]; then
		# perf's own CPU then counts as the generators'.
		perf record -q -F 499 -g -p "$server" -o "$step/perf.data" -- sleep "$STEP_SECONDS" 2>/dev/null &
		perf_pid=$!
	fi
	for g in $(seq "$GENERATORS"); do
		mkdir -p "$step/$g"
		lib_free_port 1
		(cd "$step/$g" && exec sipp -sf "$scenario" -inf "$work/users.csv" "$sip" -t "$TRANSPORT" \
			-i 127.0.0.1 -p "$port" -mi 127.0.0.1 -r "$per" -m "$count" "${RTT_FLAGS[@]}" \
			-timeout "$((STEP_SECONDS + 10))s" -timeout_error -nostdin >stdout 2>stderr) &
		pids+=($!)
	done
	lib_wait_pids
	lib_measure_end
	if [ "${PERF:-}" = 1 ]; then wait "$perf_pid" || true; fi
	sipp_totals "$step"/*/
	rtt_stats "$step"/*/
	achieved=$(echo "$t_ok / $m_wall" | bc)
	printf '%8d %9d %9d %7d %6s %6s %10d%% %8d%% %9d%% %10d %8d %s\n' "$rate" "$achieved" "$t_ok" "$t_failed" "$r_p50" "$r_p99" \
		"$m_srv_cpu" "$m_sipp_cpu" "$m_busy" "$m_drops" "$m_mem_mib" "$codes"
	# Held: every call succeeded and the step's rate was met within 5 %.
	step_ok=1
	if [ "$t_failed" -ne 0 ] || [ "$t_ok" -ne $((count * GENERATORS)) ] || [ "$achieved" -lt $((rate * 95 / 100)) ] ||
		[ -n "$(echo "$codes" | tr -d ' 0')" ]; then
		step_ok=0
	fi
}
lib_ramp step "${RATES[@]}"

if [ "$TARGET" = partyline ]; then
	bindings=$("$bin" --data "$data" -o json registrations | grep -c '"contact"' || true)
	lib_result reg registrations/s
	lib_stop_server
	stored=$("$bin" --data "$data" -o json registrations | grep -c '"contact"' || true)
	echo "bindings live: $bindings, read back from the data file after stopping: $stored"
	[ "$bindings" = "$stored" ] || { echo "reg.sh: bindings lost on stop" >&2; exit 1; }
else
	lib_result reg registrations/s
fi
