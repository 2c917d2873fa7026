#!/usr/bin/env bash
# fork3.sh: forked calls per second through the trunk to three devices,
# SIPp against the built partyline, everything on this machine and on
# loopback.
#
# A call: the carrier (SIPp, testdata/sipp/fork_trunk_call.xml, from a
# trusted trunk port, no digest) INVITEs the shared number; the proxy forks
# to the three members' devices (SIPp UASs registered with digest by
# fork_register.xml): one answers at once (fork_uas_answer.xml), two ring
# until the proxy CANCELs them, a CANCEL that must say "Call completed
# elsewhere" (fork_uas_cancelled.xml); ACK and BYE go through the proxy;
# the server writes the call's history. A call counts only when every SIPp
# (caller and three devices) completed it; after each step the history is
# read back and every call of the step must be answered, ended, with one
# answered and two cancelled_elsewhere branches.
#
# First one step at FANOUT_RATE runs, on the fresh server, with a packet
# capture on lo (bench/fork3/fanout, needs root) that takes the kernel's
# timestamps of the caller's INVITE and of the proxy's three branch INVITEs:
# the fan-out, INVITE in -> last branch out. Then the rate climbs through
# RATES, STEP_SECONDS at each, and stops at the first step that fails a
# call, misses a history record, or falls behind its rate by more than 5 %.
# The last step held is the result. Transactions live on after their calls
# (RFC 3261 timers, 32 s for INVITE), so each step also carries the
# residue of the ones before it: the RSS column shows it.
#
# The default call flow rings the members in the order they joined, one
# INVITE after the other; ann, whose device answers, joins last (ANSWERER=
# last). With ANSWERER=first her INVITE goes out first and her 200 can come
# back before the proxy has sent the other two INVITEs: see the fork3
# section of BENCHMARKS.md for what the proxy then does.
#
# Usage: bench/fork3.sh [RATE...]      (total calls/s per step)
# Environment: STEP_SECONDS (10), GENERATORS (2: caller SIPps sharing the
#   rate), FANOUT_RATE (500; 0 skips), ANSWERER (last or first), KEEP=1
#   keeps the work folder (server log, SIPp logs, data), TRACE=1 adds SIPp
#   message logs (-trace_msg; slow).
# Needs: go, sipp (Debian package sip-tester), jq, bc; root for the fan-out.
set -euo pipefail

STEP_SECONDS=${STEP_SECONDS:-10}
GENERATORS=${GENERATORS:-2}
FANOUT_RATE=${FANOUT_RATE:-500}
if [ $# -gt 0 ]; then RATES=("$@"); else RATES=(100 200 400 600 800 1000 1200 1500); fi
NUMBER=+15551230001

root=$(cd "$(dirname "$0")/.." && pwd)
scen=$root/testdata/sipp
for tool in sipp jq bc; do
	command -v "$tool" >/dev/null || { echo "fork3.sh: $tool not found (apt-get install sip-tester jq bc)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/partyline-fork3.XXXXXX)
server=""
capture=""
pids=()
stop_pids() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
cleanup() {
	stop_pids
	if [ -n "$capture" ]; then kill "$capture" 2>/dev/null || true; wait "$capture" 2>/dev/null || true; fi
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
	if [ "${KEEP:-}" = 1 ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin=$work/partyline
data=$work/data
(cd "$root" && go build -o "$bin" ./cmd/partyline && go build -o "$work/fanout" ./bench/fork3/fanout)

# Ports: loopback ports nobody uses now, for the devices and the callers.
ss -Htuan | awk '{n = split($5, a, ":"); print a[n]}' | sort -u >"$work/ports-in-use"
next_port=21000
skip_used() { while grep -qx "$next_port" "$work/ports-in-use"; do next_port=$((next_port + 1)); done; }
dev_ports=() caller_ports=()
for _ in 1 2 3; do skip_used; dev_ports+=("$next_port"); next_port=$((next_port + 1)); done
for _ in $(seq "$GENERATORS"); do skip_used; caller_ports+=("$next_port"); next_port=$((next_port + 1)); done

# Workspace: three members, the number, a trunk trusting the callers' ports.
users=(ann ben cat) # ann's device answers; the devices' ports in this order
joined=(ben cat ann)
[ "${ANSWERER:-last}" = first ] && joined=(ann ben cat)
"$bin" --data "$data" number add "$NUMBER" >/dev/null
for u in "${joined[@]}"; do
	"$bin" --data "$data" user add "$u" --password "password-$u" >/dev/null
	"$bin" --data "$data" number member add "$NUMBER" "$u" >/dev/null
done
allow=()
for p in "${caller_ports[@]}"; do allow+=(--allow "127.0.0.1:$p"); done
"$bin" --data "$data" trunk add carrier --address "127.0.0.1:${caller_ports[0]}" "${allow[@]}" >/dev/null

"$bin" --data "$data" serve --sip 127.0.0.1:0 2>"$work/server.log" &
server=$!
# The server logs its ready line within a second; a bounded wait for it.
for _ in $(seq 100); do
	grep -q 'msg="partyline ready"' "$work/server.log" && break
	kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
	sleep 0.1
done
sip=$(grep -o 'sip=[^ ]*' "$work/server.log" | head -1 | cut -d= -f2)
[ -n "$sip" ] || { echo "fork3.sh: server not ready" >&2; cat "$work/server.log" >&2; exit 1; }
sport=${sip##*:}

common=(-i 127.0.0.1 -mi 127.0.0.1 -t u1 -nostdin)
[ "${TRACE:-}" = 1 ] && common+=(-trace_msg)
# Each device registers once from its port; the binding lasts 600 s, and the
# device SIPps of every step serve on the same port.
for i in 0 1 2; do
	mkdir -p "$work/register-${users[$i]}"
	printf 'SEQUENTIAL\n%s;password-%s\n' "${users[$i]}" "${users[$i]}" >"$work/register-${users[$i]}/user.csv"
	(cd "$work/register-${users[$i]}" && sipp -sf "$scen/fork_register.xml" -inf user.csv "$sip" "${common[@]}" \
		-p "${dev_ports[$i]}" -m 1 -timeout 10s -timeout_error >stdout 2>stderr) ||
		{ echo "fork3.sh: registering ${users[$i]} failed" >&2; cat "$work/register-${users[$i]}/stdout" >&2; exit 1; }
done
regs=$("$bin" --data "$data" -o json registrations | jq length)
[ "$regs" = 3 ] || { echo "fork3.sh: $regs bindings after registering 3 devices" >&2; exit 1; }

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# This shell's waited-for children: the SIPps of each step.
sipp_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }
udp_drops() { awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $6}' /proc/net/snmp; } # RcvbufErrors, all sockets
sipp_count() { awk -F'|' -v k="$2" '$0 ~ k {gsub(/ /,"",$3); print $3}' "$1" | tail -1; }

# step NAME RATE: one bounded step; prints a row, sets step_ok (1 or 0).
step() {
	local name=$1 rate=$2
	local per=$((rate / GENERATORS))
	local count=$((per * STEP_SECONDS))
	local total=$((count * GENERATORS))
	local dir=$work/step-$name
	local limit=$((STEP_SECONDS + 20))
	mkdir -p "$dir"
	local s0 c0 d0 w0 w1 s1 c1 d1
	s0=$(cpu_ticks "$server") c0=$(sipp_ticks) d0=$(udp_drops)
	# Devices first: each takes exactly the step's calls, then exits.
	for i in 0 1 2; do
		local sf=fork_uas_cancelled.xml
		[ "$i" = 0 ] && sf=fork_uas_answer.xml
		mkdir -p "$dir/${users[$i]}"
		(cd "$dir/${users[$i]}" && exec sipp -sf "$scen/$sf" "$sip" "${common[@]}" -p "${dev_ports[$i]}" \
			-m "$total" -timeout "${limit}s" -timeout_error -trace_err >stdout 2>stderr) &
		pids+=($!)
	done
	w0=$(date +%s.%N)
	for g in $(seq "$GENERATORS"); do
		mkdir -p "$dir/caller$g"
		(cd "$dir/caller$g" && exec sipp -sf "$scen/fork_trunk_call.xml" "$sip" "${common[@]}" \
			-p "${caller_ports[$((g - 1))]}" -r "$per" -m "$count" -d 0 -cid_str "$name-$g-%u" \
			-timeout "${limit}s" -timeout_error -trace_err >stdout 2>stderr) &
		pids+=($!)
	done
	codes=""
	for p in "${pids[@]}"; do
		rc=0
		wait "$p" || rc=$?
		codes="$codes $rc"
	done
	pids=()
	w1=$(date +%s.%N)
	s1=$(cpu_ticks "$server") c1=$(sipp_ticks) d1=$(udp_drops)
	local ok=0 failed=0 devfailed=0 o f
	for g in $(seq "$GENERATORS"); do
		o=$(sipp_count "$dir/caller$g/stdout" "Successful call")
		f=$(sipp_count "$dir/caller$g/stdout" "Failed call")
		ok=$((ok + ${o:-0})) failed=$((failed + ${f:-0}))
	done
	for u in "${users[@]}"; do
		f=$(sipp_count "$dir/$u/stdout" "Failed call")
		devfailed=$((devfailed + ${f:-0}))
	done
	# ACKs that reached ann's device through the proxy (its last screen).
	local acks
	acks=$(awk '$1 ~ />$/ && $2 == "ACK" {a = $3} END {print a + 0}' "$dir/ann/stdout")
	# History: this step's calls (Call-IDs NAME-G-N), newest first; the CLI
	# returns at most 10,000, so a longer step checks its newest 10,000.
	local want=$((total < 10000 ? total : 10000)) stored good
	"$bin" --data "$data" -o json calls --number "$NUMBER" --limit "$want" >"$dir/history.json"
	stored=$(jq --arg p "$name-" '[.[] | select(.call_id | startswith($p))] | length' "$dir/history.json")
	good=$(jq --arg p "$name-" '[.[] | select(.call_id | startswith($p))
		| select(.disposition == "answered" and .ended_at != null and .answered_by.user == "ann"
			and ([.branches[].outcome] | sort) == ["answered", "cancelled_elsewhere", "cancelled_elsewhere"])] | length' "$dir/history.json")
	local wall achieved srv_cpu sipp_cpu
	wall=$(echo "$w1 - $w0" | bc)
	achieved=$(echo "$ok / $wall" | bc)
	srv_cpu=$(echo "100 * ($s1 - $s0) / $ticks / $wall" | bc)
	sipp_cpu=$(echo "100 * ($c1 - $c0) / $ticks / $wall" | bc)
	local rss
	rss=$(awk '/VmRSS/{printf "%d", $2 / 1024}' "/proc/$server/status")
	printf '%7d %8d %6d %6d %8d %6d %11s %10d%% %8d%% %9d %7s %s\n' "$rate" "$achieved" "$ok" "$failed" "$devfailed" \
		"$acks" "$good/$want" "$srv_cpu" "$sipp_cpu" $((d1 - d0)) "$rss" "$codes"
	step_ok=1
	if [ "$failed" -ne 0 ] || [ "$devfailed" -ne 0 ] || [ "$ok" -ne "$total" ] || [ "$good" -ne "$want" ] ||
		[ "$stored" -ne "$want" ] || [ "$achieved" -lt $((rate * 95 / 100)) ] || [ -n "$(echo "$codes" | tr -d ' 0')" ]; then
		step_ok=0
	fi
}

echo "load average at start: $(cut -d" " -f1-3 /proc/loadavg)"
echo "partyline forked calls/s: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(go version | cut -d' ' -f3)"
echo "server $sip; devices 127.0.0.1:${dev_ports[*]} (ann answers at once, ben and cat ring until cancelled);"
echo "members rung in the order ${joined[*]}"
echo "$GENERATORS caller SIPps from 127.0.0.1:${caller_ports[*]} (trusted trunk), BYE right after ACK; $STEP_SECONDS s per step"
echo "failed: caller calls failed; dev fail: device calls failed; ACKs: ACKs ann's device got (dead-call ACKs not counted)"
echo "history: calls of the step recorded answered by ann"
echo "with 1 answered + 2 cancelled_elsewhere branches / calls checked; CPU in % of one core; UDP drops: kernel receive-buffer drops"
printf '%7s %8s %6s %6s %8s %6s %11s %11s %9s %9s %7s %s\n' target achieved calls failed "dev fail" ACKs history "server CPU" "SIPp CPU" "UDP drops" "RSS MiB" "exit codes"
if [ "$FANOUT_RATE" -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "fan-out: skipped (the packet capture needs root)"
	else
		in_ports=$(IFS=,; echo "${caller_ports[*]}")
		out_ports=$(IFS=,; echo "${dev_ports[*]}")
		"$work/fanout" -server "$sport" -in "$in_ports" -out "$out_ports" -for "$((STEP_SECONDS + 30))s" \
			>"$work/fanout.out" 2>"$work/fanout.err" &
		capture=$!
		# The capture prints one line when its socket is open; a bounded wait.
		for _ in $(seq 50); do grep -q capturing "$work/fanout.err" && break; sleep 0.1; done
		echo "fan-out step at $FANOUT_RATE calls/s on the fresh server, packet capture running:"
		step "fanout" "$FANOUT_RATE"
		kill -TERM "$capture" 2>/dev/null || true
		wait "$capture" || true
		capture=""
		cat "$work/fanout.out" "$work/fanout.err" | grep -v capturing || true
	fi
fi

held=0
for rate in "${RATES[@]}"; do
	step "r$rate" "$rate"
	[ "$step_ok" = 1 ] || break
	held=$rate
done
echo "highest rate held with 0 failures: $held calls/s"

peak=$(awk '/VmHWM/{print $2 / 1024 " MiB"}' "/proc/$server/status")
echo "server peak RSS (VmHWM): $peak"
