#!/usr/bin/env bash
# fork3.sh: forked calls per second through the trunk to three devices,
# SIPp against the built partyline (or Kamailio: TARGET=kamailio),
# everything on this machine and on loopback.
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
# answered and two cancelled_elsewhere branches (partyline only: Kamailio,
# bench/kamailio/kamailio.cfg, keeps no history; its devices still check
# the CANCEL's Reason).
#
# First one step at FANOUT_RATE runs, on the fresh server, with a packet
# capture on lo (bench/fork3/fanout, needs root) that takes the kernel's
# timestamps of the caller's INVITE and of the proxy's three branch INVITEs:
# the fan-out, INVITE in -> last branch out. Then the rate climbs through
# RATES, STEP_SECONDS at each, and stops at the first step that fails a
# call, misses a history record, falls behind its rate by more than 5 %, or
# whose p99 setup time (the caller's INVITE to its 200, SIPp's -trace_rtt,
# whole ms) passes P99_LIMIT_MS (200).
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
# Environment: TARGET (partyline or kamailio; KAM_CHILDREN, default 1 here,
#   its UDP workers), STEP_SECONDS (10),
#   P99_LIMIT_MS (200), GENERATORS (2: caller SIPps sharing the
#   rate), FANOUT_RATE (500; 0 skips), ANSWERER (last or first), KEEP=1
#   keeps the work folder (server log, SIPp logs, data), TRACE=1 adds SIPp
#   message logs (-trace_msg; slow), REALTIME (Kamailio only: its
#   workers under SCHED_RR, real_time=7 rt_policy=1 rt_prio=10 in
#   kamailio.cfg; partyline has no such option; default 0), FANOUT_DUMP (a file for
#   every call of the fan-out step: the INVITE's kernel time in Unix ns, its
#   source port, first and last branch out in ns after it), GOTRACE (a
#   file for Go's runtime trace of the server during the fan-out step, from
#   `serve --pprof`; partyline only; read it with `go tool trace`).
# Needs: go, sipp (Debian package sip-tester), jq, bc; root for the fan-out;
#   kamailio for TARGET=kamailio; curl for GOTRACE.
set -euo pipefail

TARGET=${TARGET:-partyline}
STEP_SECONDS=${STEP_SECONDS:-10}
GENERATORS=${GENERATORS:-2}
FANOUT_RATE=${FANOUT_RATE:-500}
if [ $# -gt 0 ]; then RATES=("$@"); else RATES=(100 200 400 600 800 1000 1200 1500); fi
NUMBER=+15551230001
REALTIME=${REALTIME:-0}

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
root=$BENCH_ROOT
scen=$root/testdata/sipp
for tool in sipp jq bc; do
	command -v "$tool" >/dev/null || { echo "fork3.sh: $tool not found (apt-get install sip-tester jq bc)" >&2; exit 1; }
done
case $TARGET in partyline | kamailio) ;; *) echo "fork3.sh: TARGET is partyline or kamailio" >&2; exit 2 ;; esac

work=$(mktemp -d /tmp/partyline-fork3.XXXXXX)
capture=""
pids=()
stop_pids() {
	lib_stop "${pids[@]}"
	pids=()
}
trap 'lib_cleanup "$capture"' EXIT
trap 'exit 130' INT TERM

load_at_start=$(lib_load)
bin=$work/partyline
data=$work/data
(cd "$root" && go build -o "$work/fanout" ./bench/fork3/fanout)
[ "$TARGET" = partyline ] && (cd "$root" && go build -o "$bin" ./cmd/partyline)
# The caller's scenario with its INVITE → 200 timed (SIPp's -trace_rtt).
lib_rtd "$scen/fork_trunk_call.xml" "$work/fork_trunk_call.xml"

# Ports: loopback ports nobody uses now, for the devices and the callers.
lib_ports_snapshot
next_port=21000
dev_ports=() caller_ports=()
for _ in 1 2 3; do lib_free_port 1; dev_ports+=("$port"); done
for _ in $(seq "$GENERATORS"); do lib_free_port 1; caller_ports+=("$port"); done

users=(ann ben cat) # ann's device answers; the devices' ports in this order
joined=(ben cat ann)
[ "${ANSWERER:-last}" = first ] && joined=(ann ben cat)
pprof=() # --pprof ADDR when GOTRACE is set
if [ "$TARGET" = partyline ]; then
	# Workspace: three members, the number, a trunk trusting the callers' ports.
	"$bin" --data "$data" number add "$NUMBER" >/dev/null
	for u in "${joined[@]}"; do
		"$bin" --data "$data" user add "$u" --password "password-$u" >/dev/null
		"$bin" --data "$data" number member add "$NUMBER" "$u" >/dev/null
	done
	allow=()
	for p in "${caller_ports[@]}"; do allow+=(--allow "127.0.0.1:$p"); done
	"$bin" --data "$data" trunk add carrier --address "127.0.0.1:${caller_ports[0]}" "${allow[@]}" >/dev/null
	if [ -n "${GOTRACE:-}" ]; then
		lib_ports_snapshot
		lib_free_port
		pprof=(--pprof "127.0.0.1:$port")
	fi
	[ "$REALTIME" = 0 ] || { echo "fork3.sh: REALTIME is for Kamailio only (partyline runs on the normal scheduler)" >&2; exit 2; }
	lib_start_partyline "$bin" "$data" "${pprof[@]}"
else
	# kamailio.cfg: passwords "password-USER", members rung ben, cat, ann.
	[ "${ANSWERER:-last}" = last ] || { echo "fork3.sh: kamailio.cfg rings ann last only" >&2; exit 2; }
	# One UDP worker: with several, a device's 180 handled by one worker
	# while another handles ann's 200 leaves that device without a CANCEL
	# now and then (3-9 % of calls at 50-100 calls/s with 4 workers, with
	# either cancel_b_method 1 or 2), and a 180 is relayed after the 200.
	KAM_CHILDREN=${KAM_CHILDREN:-1}
	if [ "$REALTIME" != 0 ]; then
		[ "$REALTIME" = 10 ] || { echo "fork3.sh: kamailio.cfg's real-time priority is 10: REALTIME=10 or 0" >&2; exit 2; }
		KAM_ARGS="${KAM_ARGS:-} -A REALTIME"
	fi
	lib_start_kamailio
fi
# The devices' scenarios. Kamailio 5.6's tm CANCELs the other branches
# with "Reason: SIP;cause=200" and no text: its devices accept that too.
cp "$scen/fork_uas_answer.xml" "$scen/fork_uas_cancelled.xml" "$work/"
if [ "$TARGET" = kamailio ]; then
	sed -i 's/SIP;cause=200;text=&quot;Call completed elsewhere&quot; \*\$/SIP;cause=200(;text=\&quot;Call completed elsewhere\&quot;)? *$/' \
		"$work/fork_uas_cancelled.xml"
	grep -q 'cause=200(;text' "$work/fork_uas_cancelled.xml" || { echo "fork3.sh: could not relax the Reason check" >&2; exit 1; }
fi

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
if [ "$TARGET" = partyline ]; then
	regs=$("$bin" --data "$data" -o json registrations | jq length)
	[ "$regs" = 3 ] || { echo "fork3.sh: $regs bindings after registering 3 devices" >&2; exit 1; }
fi

# step NAME RATE: one bounded step; prints a row, sets step_ok (1 or 0).
step() {
	local name=$1 rate=$2
	local per=$((rate / GENERATORS))
	local count=$((per * STEP_SECONDS))
	local total=$((count * GENERATORS))
	local dir=$work/step-$name
	local limit=$((STEP_SECONDS + 20))
	local i g p rc codes=""
	mkdir -p "$dir"
	lib_measure_begin
	# Devices first: each takes exactly the step's calls, then exits.
	for i in 0 1 2; do
		local sf=fork_uas_cancelled.xml
		[ "$i" = 0 ] && sf=fork_uas_answer.xml
		mkdir -p "$dir/${users[$i]}"
		(cd "$dir/${users[$i]}" && exec sipp -sf "$work/$sf" "$sip" "${common[@]}" -p "${dev_ports[$i]}" \
			-m "$total" -timeout "${limit}s" -timeout_error -trace_err >stdout 2>stderr) &
		pids+=($!)
	done
	for g in $(seq "$GENERATORS"); do
		mkdir -p "$dir/caller$g"
		(cd "$dir/caller$g" && exec sipp -sf "$work/fork_trunk_call.xml" "$sip" "${common[@]}" "${RTT_FLAGS[@]}" \
			-p "${caller_ports[$((g - 1))]}" -r "$per" -m "$count" -d 0 -cid_str "$name-$g-%u" \
			-timeout "${limit}s" -timeout_error -trace_err >stdout 2>stderr) &
		pids+=($!)
	done
	lib_wait_pids
	lib_measure_end
	sipp_totals "$dir"/caller*/
	local ok=$t_ok failed=$t_failed devfailed
	sipp_totals "$dir/ann" "$dir/ben" "$dir/cat"
	devfailed=$t_failed
	rtt_stats "$dir"/caller*/
	# ACKs that reached ann's device through the proxy (its last screen).
	local acks
	acks=$(awk '$1 ~ />$/ && $2 == "ACK" {a = $3} END {print a + 0}' "$dir/ann/stdout")
	# History: this step's calls (Call-IDs NAME-G-N), newest first; the CLI
	# returns at most 10,000, so a longer step checks its newest 10,000.
	local want=$((total < 10000 ? total : 10000)) stored good
	if [ "$TARGET" = partyline ]; then
		"$bin" --data "$data" -o json calls --number "$NUMBER" --limit "$want" >"$dir/history.json"
		stored=$(jq --arg p "$name-" '[.[] | select(.call_id | startswith($p))] | length' "$dir/history.json")
		good=$(jq --arg p "$name-" '[.[] | select(.call_id | startswith($p))
			| select(.disposition == "answered" and .ended_at != null and .answered_by.user == "ann"
				and ([.branches[].outcome] | sort) == ["answered", "cancelled_elsewhere", "cancelled_elsewhere"])] | length' "$dir/history.json")
	else
		stored=$want good=$want # no history to check
	fi
	achieved=$(echo "$ok / $m_wall" | bc)
	printf '%7d %8d %6d %6d %8d %6d %11s %6s %6s %10d%% %8d%% %6s%% %9d %7s %s\n' "$rate" "$achieved" "$ok" "$failed" "$devfailed" \
		"$acks" "$good/$want" "$r_p50" "$r_p99" "$m_srv_cpu" "$m_sipp_cpu" "$m_steal" "$m_drops" "$m_mem_mib" "$codes"
	step_ok=1
	if [ "$failed" -ne 0 ] || [ "$devfailed" -ne 0 ] || [ "$ok" -ne "$total" ] || [ "$good" -ne "$want" ] ||
		[ "$stored" -ne "$want" ] || [ "$achieved" -lt $((rate * 95 / 100)) ] || [ -n "$(echo "$codes" | tr -d ' 0')" ]; then
		step_ok=0
	fi
}

if [ "$TARGET" = kamailio ]; then version=$(kamailio -v | head -1 | cut -d' ' -f2-3); else version=$(go version | cut -d' ' -f3); fi
echo "load average at start: $load_at_start"
echo "$TARGET forked calls/s: $(lib_machine), $version"
echo "server $sip; devices 127.0.0.1:${dev_ports[*]} (ann answers at once, ben and cat ring until cancelled);"
echo "members rung in the order ${joined[*]}"
if [ "$REALTIME" != 0 ]; then echo "server's SIP receive threads under SCHED_RR, priority $REALTIME"; else echo "server under the normal scheduler"; fi
echo "$GENERATORS caller SIPps from 127.0.0.1:${caller_ports[*]} (trusted trunk), BYE right after ACK; $STEP_SECONDS s per step"
echo "failed: caller calls failed; dev fail: device calls failed; ACKs: ACKs ann's device got (dead-call ACKs not counted)"
echo "history: calls of the step recorded answered by ann"
echo "with 1 answered + 2 cancelled_elsewhere branches / calls checked (kamailio: not checked);"
echo "p50/p99: the caller's INVITE to its 200, ms; CPU in % of one core; steal: % of the machine's time the hypervisor gave to others;"
echo "UDP drops: kernel receive-buffer drops; mem: server, step end"
printf '%7s %8s %6s %6s %8s %6s %11s %6s %6s %11s %9s %7s %9s %7s %s\n' target achieved calls failed "dev fail" ACKs history p50 p99 "server CPU" "SIPp CPU" steal "UDP drops" "mem MiB" "exit codes"
if [ "$FANOUT_RATE" -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "fan-out: skipped (the packet capture needs root)"
	else
		in_ports=$(IFS=,; echo "${caller_ports[*]}")
		out_ports=$(IFS=,; echo "${dev_ports[*]}")
		"$work/fanout" -server "$sport" -in "$in_ports" -out "$out_ports" -for "$((STEP_SECONDS + 30))s" -dump "${FANOUT_DUMP:-}" \
			>"$work/fanout.out" 2>"$work/fanout.err" &
		capture=$!
		# The capture prints one line when its socket is open; a bounded wait.
		for _ in $(seq 50); do grep -q capturing "$work/fanout.err" && break; sleep 0.1; done
		echo "fan-out step at $FANOUT_RATE calls/s on the fresh server, packet capture running:"
		tracer=""
		if [ ${#pprof[@]} -gt 0 ]; then
			curl -s --max-time "$((STEP_SECONDS + 30))" -o "$GOTRACE" "http://${pprof[1]}/debug/pprof/trace?seconds=$STEP_SECONDS" &
			tracer=$!
		fi
		step "fanout" "$FANOUT_RATE"
		[ -z "$tracer" ] || wait "$tracer" || echo "fork3.sh: no runtime trace in $GOTRACE" >&2
		kill -TERM "$capture" 2>/dev/null || true
		wait "$capture" || true
		capture=""
		cat "$work/fanout.out" "$work/fanout.err" | grep -v capturing || true
		echo "hypervisor steal during the fan-out step: ${m_steal} % of the machine's time"
	fi
fi

step_rate() { step "r$1" "$1"; }
lib_ramp step_rate "${RATES[@]}"
lib_result fork3 calls/s
