# shellcheck shell=bash
# Variables are set here for the sourcing script and read from it:
# shellcheck disable=SC2034,SC2154,SC2119,SC2120
# lib.sh: the measuring code the load scripts share (reg.sh, fork3.sh,
# vm.sh, kamailio/run.sh), sourced, so partyline and Kamailio are measured
# by the same lines: the server's CPU and memory, the SIPps' CPU, the
# machine, kernel UDP drops, SIPp's counts and response times, free
# loopback ports, the step ramp, and starting either server.
#
# The sourcing script owns cleanup: its EXIT trap calls lib_cleanup with
# any helper PIDs of its own; lib_stop_server stops the server by its PID.

# lib_stop PID...: kill the processes and reap them (empty arguments are
# skipped).
lib_stop() {
	local p
	for p in "$@"; do [ -z "$p" ] || kill "$p" 2>/dev/null || true; done
	for p in "$@"; do [ -z "$p" ] || wait "$p" 2>/dev/null || true; done
}

# lib_wait_pids: wait for every process in pids[], bounded by their own
# timeouts; sets codes to their exit statuses, in order, and empties pids.
lib_wait_pids() {
	local p rc
	codes=""
	for p in "${pids[@]}"; do
		rc=0
		wait "$p" || rc=$?
		codes="$codes $rc"
	done
	pids=()
}

# lib_cleanup [PID...]: what a script's EXIT trap does: the processes in
# pids[] and the given ones stopped, the server stopped, the work folder
# removed (kept with KEEP=1).
lib_cleanup() {
	lib_stop "${pids[@]}" "$@"
	lib_stop_server
	if [ "${KEEP:-}" = 1 ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TICKS=$(getconf CLK_TCK)
# The ramp stops at the first step whose p99 response time passes this.
P99_LIMIT_MS=${P99_LIMIT_MS:-200}

lib_machine() { echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"; }
lib_load() { cut -d' ' -f1-3 /proc/loadavg; }

# --- Free loopback ports ----------------------------------------------------
# lib_ports_snapshot: the ports in use now (UDP and TCP); lib_free_port
# [SPAN] sets port to the next_port (the caller's counter, below the
# ephemeral range) with SPAN free consecutive ports, and moves past them.
lib_ports_snapshot() { ss -Htuan | awk '{n = split($5, a, ":"); print a[n]}' | sort -u >"$work/ports-in-use"; }
lib_free_port() {
	local span=${1:-1} i busy
	for _ in $(seq 5000); do
		busy=0
		for ((i = 0; i < span; i++)); do
			grep -qx "$((next_port + i))" "$work/ports-in-use" && busy=1 && break
		done
		[ "$busy" = 0 ] && break
		next_port=$((next_port + span))
	done
	port=$next_port
	next_port=$((next_port + span))
}

# --- The server: partyline or Kamailio ----------------------------------------
# server: the PID the script started (Kamailio's main process forks its
# workers: server_pids holds them all, for CPU and memory).
server=""
server_pids=()
server_peak_kib=0

# lib_start_partyline BIN DATA [serve flags...]: serve on a free port the
# server picks itself; sets server, sip (IP:PORT), sport.
lib_start_partyline() {
	local bin=$1 data=$2
	shift 2
	# Every SIPp of a load test sends from 127.0.0.1: no per-source limit
	# on requests without credentials (--unproven-rate -1), as Kamailio's
	# configuration here has no pike.
	"$bin" --data "$data" serve --sip 127.0.0.1:0 --unproven-rate -1 "$@" 2>"$work/server.log" &
	server=$!
	# The server logs its ready line within a second; a bounded wait for it.
	for _ in $(seq 100); do
		grep -q 'msg="partyline ready"' "$work/server.log" && break
		kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; return 1; }
		sleep 0.1
	done
	sip=$(grep -o 'sip=[^ ]*' "$work/server.log" | head -1 | cut -d= -f2)
	[ -n "$sip" ] || { echo "server not ready" >&2; cat "$work/server.log" >&2; return 1; }
	sport=${sip##*:}
	server_pids=("$server")
}

# lib_start_kamailio: bench/kamailio/kamailio.cfg on a free loopback port
# (UDP and TCP), KAM_CHILDREN (4) UDP workers, KAM_SHM_MB (512) of shared
# memory, KAM_ARGS (extra kamailio flags, e.g. "-A BRANCH_LOG"); sets
# server, sip, sport.
lib_start_kamailio() {
	command -v kamailio >/dev/null || { echo "kamailio not found: bench/kamailio/run.sh installs it" >&2; return 1; }
	lib_ports_snapshot
	next_port=${next_port:-23000}
	lib_free_port
	sport=$port
	sip=127.0.0.1:$sport
	mkdir -p "$work/kamailio-run"
	# shellcheck disable=SC2086 # KAM_ARGS: words
	kamailio -f "$BENCH_ROOT/bench/kamailio/kamailio.cfg" ${KAM_ARGS:-} -DD -E -l "udp:$sip" -l "tcp:$sip" \
		-n "${KAM_CHILDREN:-4}" -m "${KAM_SHM_MB:-512}" -M 16 -w "$work/kamailio-run" -Y "$work/kamailio-run" \
		2>"$work/server.log" &
	server=$!
	# Ready when the UDP socket is bound and the workers are forked; a bounded wait.
	for _ in $(seq 100); do
		kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; return 1; }
		ss -Hlun "sport = :$sport" | grep -q . && [ "$(pgrep -c -P "$server")" -ge "${KAM_CHILDREN:-4}" ] && break
		sleep 0.1
	done
	sleep 0.5
	mapfile -t server_pids < <(echo "$server"; pgrep -P "$server")
	[ "${#server_pids[@]}" -gt 1 ] || { echo "kamailio not ready" >&2; cat "$work/server.log" >&2; return 1; }
}

# lib_stop_server: TERM by PID, bounded wait (10 s), then KILL.
lib_stop_server() {
	[ -n "$server" ] || return 0
	kill -TERM "$server" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=""
}

# Server CPU: user + system ticks of all its processes.
server_ticks() {
	local p t=0 x
	for p in "${server_pids[@]}"; do
		x=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
		t=$((t + x))
	done
	echo "$t"
}
# Server memory now, KiB: one process: its RSS; several: the sum of their
# proportional set sizes (Kamailio's shared memory counted once).
server_mem_kib() {
	if [ "${#server_pids[@]}" = 1 ]; then
		awk '/^VmRSS/{print $2}' "/proc/$server/status"
	else
		local p
		for p in "${server_pids[@]}"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '/^Pss:/{s += $2} END {print s + 0}'
	fi
}
# Peak: one process: the kernel's VmHWM; several: the largest sample
# (lib_measure_end samples at the end of each step).
server_peak_mib() {
	if [ "${#server_pids[@]}" = 1 ]; then
		awk '/^VmHWM/{printf "%d", $2 / 1024}' "/proc/$server/status"
	else
		echo $((server_peak_kib / 1024))
	fi
}

# This shell's waited-for children: the SIPps of each step (and perf).
sipp_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6, $9}' /proc/stat; } # all, idle+iowait, steal
udp_drops() { awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $6}' /proc/net/snmp; }        # RcvbufErrors, all sockets

# lib_measure_begin / lib_measure_end around a step: sets m_wall (s),
# m_srv_cpu, m_sipp_cpu, m_busy (% of one core; the machine has nproc×100),
# m_drops, m_mem_mib (server memory at the end), m_steal (% of the
# machine's time a hypervisor gave to others: on a virtual machine the
# cores can vanish for milliseconds, which no latency figure hides).
lib_measure_begin() {
	_s0=$(server_ticks) _c0=$(sipp_ticks) _d0=$(udp_drops)
	read -r _m0 _i0 _st0 < <(machine_ticks)
	_w0=$(date +%s.%N)
}
lib_measure_end() {
	local w1 s1 c1 d1 m1 i1 st1 mem
	w1=$(date +%s.%N) s1=$(server_ticks) c1=$(sipp_ticks) d1=$(udp_drops)
	read -r m1 i1 st1 < <(machine_ticks)
	m_steal=$(printf '%.1f' "$(echo "scale=2; 100 * ($st1 - $_st0) / ($m1 - $_m0)" | bc)")
	m_wall=$(echo "$w1 - $_w0" | bc)
	m_srv_cpu=$(echo "100 * ($s1 - $_s0) / $TICKS / $m_wall" | bc)
	m_sipp_cpu=$(echo "100 * ($c1 - $_c0) / $TICKS / $m_wall" | bc)
	m_busy=$(echo "100 * $(nproc) * (($m1 - $_m0) - ($i1 - $_i0)) / ($m1 - $_m0)" | bc)
	m_drops=$((d1 - _d0))
	mem=$(server_mem_kib)
	[ "$mem" -gt "$server_peak_kib" ] && server_peak_kib=$mem
	m_mem_mib=$((mem / 1024))
}

# --- SIPp ---------------------------------------------------------------------
# sipp_count STDOUT KEY: a cumulative counter of SIPp's final screen.
sipp_count() { awk -F'|' -v k="$2" '$0 ~ k {gsub(/ /,"",$3); print $3}' "$1" | tail -1; }
# sipp_totals DIR...: sets t_ok, t_failed summed over DIR/stdout.
sipp_totals() {
	local d o f
	t_ok=0 t_failed=0
	for d in "$@"; do
		o=$(sipp_count "$d/stdout" "Successful call")
		f=$(sipp_count "$d/stdout" "Failed call")
		t_ok=$((t_ok + ${o:-0})) t_failed=$((t_failed + ${f:-0}))
	done
}
# SIPp measures a response time only between marked messages: lib_rtd
# SCENARIO OUT marks a copy of SCENARIO with rtd="true" on the first
# <recv response="200"...> (timed from the call's first message: a
# registration's REGISTER to its final 200, a call's INVITE to its 200).
# Run the copy with RTT_FLAGS: every call's time in *_rtt.csv (whole ms).
lib_rtd() {
	awk '!done && /<recv response="200"/ { sub(/<recv response="200"/, "<recv response=\"200\" rtd=\"true\""); done = 1 } { print }' "$1" >"$2"
	grep -q 'rtd="true"' "$2" || { echo "lib_rtd: no 200 to mark in $1" >&2; return 1; }
}
RTT_FLAGS=(-trace_rtt -rtt_freq 1)
# rtt_stats DIR...: sets r_n, r_p50, r_p99 (ms, rounded to whole ms: SIPp
# writes whole ms, and a fraction now and then) from DIR/*_rtt.csv.
rtt_stats() {
	local d
	read -r r_n r_p50 r_p99 < <(for d in "$@"; do tail -q -n +2 "$d"/*_rtt.csv 2>/dev/null; done |
		awk -F';' '$3 == 1 {print $2}' | sort -n | awk '{v[NR] = $1}
			END { if (NR == 0) { print 0, "-", "-"; exit }
				i50 = int(0.50 * NR); if (i50 < 0.50 * NR) i50++
				i99 = int(0.99 * NR); if (i99 < 0.99 * NR) i99++
				printf "%d %d %d\n", NR, v[i50] + 0.5, v[i99] + 0.5 }')
}

# --- The ramp -------------------------------------------------------------------
# lib_ramp STEPFN RATE...: runs "STEPFN RATE" for each rate in turn; the
# step prints its row and sets step_ok (1: every call succeeded and its
# checks passed), r_p50, r_p99 and the m_* figures. The ramp stops at the
# first step not ok or with p99 over P99_LIMIT_MS; sets held (0 when none),
# held_p50, held_p99, held_srv_cpu, held_achieved (the caller's variable
# achieved) of the last step held, and stop_reason.
lib_ramp() {
	local fn=$1 rate
	shift
	held=0 held_p50=- held_p99=- held_srv_cpu=- held_achieved=0 stop_reason="every step held"
	for rate in "$@"; do
		"$fn" "$rate"
		if [ "$step_ok" != 1 ]; then
			stop_reason="$rate/s: calls failed or fell behind"
			break
		fi
		if [ "$r_p99" != - ] && [ "$r_p99" -gt "$P99_LIMIT_MS" ]; then
			stop_reason="$rate/s: p99 $r_p99 ms over $P99_LIMIT_MS ms"
			break
		fi
		held=$rate held_p50=$r_p50 held_p99=$r_p99 held_srv_cpu=$m_srv_cpu held_achieved=${achieved:-0}
	done
}

# lib_result NAME UNIT: the summary lines; the last one, "result: ...",
# is what kamailio/run.sh and make bench read.
lib_result() {
	echo "highest rate held with 0 failures: $held $2 ($held_achieved achieved; p50 $held_p50 ms, p99 $held_p99 ms; server CPU $held_srv_cpu % of one core); stopped at $stop_reason"
	echo "server peak memory: $(server_peak_mib) MiB ($([ "${#server_pids[@]}" = 1 ] && echo "VmHWM" || echo "sum of PSS of ${#server_pids[@]} processes, sampled at step ends"))"
	echo "result: bench=$1 target=${TARGET:-partyline} held=$held achieved=$held_achieved p50_ms=$held_p50 p99_ms=$held_p99 server_cpu=$held_srv_cpu peak_mib=$(server_peak_mib) realtime=${REALTIME:-0} load_at_start=${load_at_start// /,}"
}
