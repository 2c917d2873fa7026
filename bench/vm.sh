#!/usr/bin/env bash
# vm.sh: voicemail recordings at once, SIPp against the built partyline,
# everything on this machine and on loopback; the number of recordings at
# once climbs step by step until a step is not held.
#
# A call: the carrier (SIPp, testdata/sipp/vm_caller_pcap.xml, from a
# trusted trunk port, no digest) INVITEs the shared number, whose only
# member has no phone, so voicemail answers at once: partyline plays a
# 0.2 s greeting (GREETING=default keeps the built-in 5.2 s one) and the
# 300 ms beep, then records. PREPLAY ms after its ACK the caller plays
# SIPp's stock /usr/share/sip-tester/g711a.pcap (PCMA, 236 packets of
# 30 ms, 7.08 s) and hangs up 7.6 s later; partyline stores the message.
# A step of CALLS recordings starts its calls within START_SECONDS (2 s:
# CALLS/2 calls/s), so all CALLS record at the same time for about 7 s.
#
# Each step runs on a fresh server and a fresh data folder (the same
# workspace), and is measured on its own:
# - messages stored, their durations against the pcap's 7.08 s (a message
#   ends at its last packet, so a short one lost its end);
# - packet loss at the recorder, exactly: every message is exported and
#   compared, 30 ms frame by frame, with the pcap's audio (the recorder lays
#   packets out by RTP timestamp and a lost or late packet leaves silence,
#   which no A-law frame decodes to). A frame that differs is lost. Frames
#   before the message's first one arrived before the recorder started (the
#   greeting outlasted PREPLAY) and are counted apart as "early";
# - setup time: the caller's INVITE to its 200 (SIPp's -trace_rtt on a copy
#   of the scenario marked by lib.sh's lib_rtd; p50/p99, whole ms);
# - kernel drops on the server's RTP sockets (/proc/net/udp, sampled every
#   0.5 s; a socket's drops after its last sample are missed) and on its SIP
#   socket (the machine's count would include SIPp's media sockets, which
#   nobody reads: partyline's 20 ms silence piles up there);
# - server CPU: over the step, and at the plateau, the samples while at
#   least 95 % of CALLS RTP sockets were open, divided by the open sockets:
#   CPU per stream (a stream: one caller's RTP in, partyline's 20 ms
#   silence out, the recorder); server RSS at the plateau and its peak
#   (VmHWM of the step's server).
# A step is held when every call completed (every SIPp exit code 0), every
# message was stored, under 0.1 % of the frames were lost, every call has a
# setup time and the p99 setup time is at most P99_LIMIT_MS (200). The ramp
# (lib.sh's lib_ramp) stops at the first step not held; the last step held
# is the result, printed as a "result:" line. The script exits 1 when no
# step was held.
#
# Usage: bench/vm.sh [CALLS...]   (recordings at once per step; default
#   250 500 750 1000 1250)
# Environment: START_SECONDS (2: each step's calls start within it),
#   GENERATORS (2 caller SIPps sharing each step), PREPLAY (1500 ms),
#   GREETING (short or default), RTP_PORTS (20000-23999: the server's RTP
#   ports, an even port per call; the callers' ports are taken above it),
#   P99_LIMIT_MS (200), KEEP=1 keeps the work folder (per step: server log,
#   SIPp logs, data, exported messages), TRACE=1 adds SIPp message logs.
# Needs: go, sipp (Debian package sip-tester, which also ships the pcap),
#   jq, bc; root (SIPp replays the pcap through a raw socket).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -gt 0 ]; then STEPS=("$@"); else STEPS=(250 500 750 1000 1250); fi
START_SECONDS=${START_SECONDS:-2}
GENERATORS=${GENERATORS:-2}
PREPLAY=${PREPLAY:-1500}
GREETING=${GREETING:-short}
RTP_PORTS=${RTP_PORTS:-20000-23999}
NUMBER=+15551230001
PCAP=/usr/share/sip-tester/g711a.pcap

root=$BENCH_ROOT
scen=$root/testdata/sipp
for tool in sipp jq bc go; do
	command -v "$tool" >/dev/null || { echo "vm.sh: $tool not found (apt-get install sip-tester jq bc)" >&2; exit 1; }
done
[ -r "$PCAP" ] || { echo "vm.sh: $PCAP missing (apt-get install sip-tester)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "vm.sh: SIPp's play_pcap_audio needs root (a raw socket)" >&2; exit 1; }
rtp_low=${RTP_PORTS%-*} rtp_high=${RTP_PORTS#*-}
top_step=0
for c in "${STEPS[@]}"; do
	if ! [[ $c =~ ^[0-9]+$ ]] || [ "$c" -lt "$GENERATORS" ] || [ $((c % GENERATORS)) != 0 ]; then
		echo "vm.sh: a step ($c) is a multiple of GENERATORS ($GENERATORS)" >&2
		exit 2
	fi
	[ "$c" -gt "$top_step" ] && top_step=$c
done
[ $(((rtp_high - rtp_low) / 2 + 1)) -ge "$top_step" ] || { echo "vm.sh: RTP_PORTS $RTP_PORTS holds fewer than $top_step even ports" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/partyline-vm.XXXXXX)
sampler=""
pids=()
trap 'lib_cleanup "$sampler"' EXIT
trap 'exit 130' INT TERM

load_at_start=$(lib_load)
bin=$work/partyline
(cd "$root" && go build -o "$bin" ./cmd/partyline)
# The caller's scenario with its INVITE -> 200 timed (SIPp's -trace_rtt).
lib_rtd "$scen/vm_caller_pcap.xml" "$work/vm_caller_pcap.xml"

# The checker: compares exported messages with the pcap (stdlib only).
mkdir -p "$work/vmcheck"
cat >"$work/vmcheck/go.mod" <<'EOF'
module vmcheck

go 1.21
EOF
cat >"$work/vmcheck/main.go" <<'EOF'
// vmcheck PCAP WAV...: for each exported message (16-bit 8 kHz mono WAV),
// which of the pcap's RTP frames it holds, sample for sample.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sort"
)

// alaw decodes one G.711 A-law byte (ITU-T G.711).
func alaw(a byte) int16 {
	a ^= 0x55
	t := int32(a&0x0f)<<4 + 8
	if seg := (a & 0x70) >> 4; seg > 0 {
		t = (t + 0x100) << (seg - 1)
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// frames returns the pcap's PCMA payloads decoded, in capture order, and
// their positions by RTP timestamp.
func frames(path string) (out [][]int16, pos []int) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		fmt.Fprintln(os.Stderr, "vmcheck: want a little-endian Ethernet pcap:", path, err)
		os.Exit(2)
	}
	var first uint32
	for rest := b[24:]; len(rest) >= 16; {
		n := int(binary.LittleEndian.Uint32(rest[8:]))
		f := rest[16 : 16+n]
		rest = rest[16+n:]
		if len(f) < 14+20+8+12 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
			continue
		}
		ip := f[14:]
		ihl := int(ip[0]&15) * 4
		if ip[9] != 17 {
			continue
		}
		r := ip[ihl+8:]
		if r[0]>>6 != 2 || r[1]&0x7f != 8 {
			continue
		}
		hdr := 12 + 4*int(r[0]&15)
		ts := binary.BigEndian.Uint32(r[4:])
		if len(out) == 0 {
			first = ts
		}
		s := make([]int16, len(r)-hdr)
		for i, c := range r[hdr:] {
			s[i] = alaw(c)
		}
		out = append(out, s)
		pos = append(pos, int(ts-first))
	}
	return out, pos
}

func wav(path string) []int16 {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 44 {
		fmt.Fprintln(os.Stderr, "vmcheck:", path, err)
		os.Exit(2)
	}
	for rest := b[12:]; len(rest) >= 8; {
		size := int(binary.LittleEndian.Uint32(rest[4:]))
		if string(rest[:4]) == "data" {
			d := rest[8 : 8+size]
			s := make([]int16, len(d)/2)
			for i := range s {
				s[i] = int16(binary.LittleEndian.Uint16(d[2*i:]))
			}
			return s
		}
		rest = rest[8+size+size%2:]
	}
	return nil
}

func main() {
	fr, pos := frames(os.Args[1])
	var total, held, early, lost, worst int
	var worstFile string
	var lens []int
	for _, path := range os.Args[2:] {
		rec := wav(path)
		lens = append(lens, len(rec))
		// The message starts at the first frame the recorder took: find it.
		start := -1
		for k := range fr {
			if len(rec) >= len(fr[k]) && slices.Equal(rec[:len(fr[k])], fr[k]) {
				start = k
				break
			}
		}
		total += len(fr)
		if start < 0 {
			lost += len(fr)
			fmt.Fprintf(os.Stderr, "vmcheck: %s holds none of the pcap's frames\n", path)
			continue
		}
		early += start
		miss := 0
		for j := start; j < len(fr); j++ {
			at := pos[j] - pos[start]
			if at+len(fr[j]) <= len(rec) && slices.Equal(rec[at:at+len(fr[j])], fr[j]) {
				held++
			} else {
				miss++
			}
		}
		lost += miss
		if miss > worst {
			worst, worstFile = miss, path
		}
	}
	sort.Ints(lens)
	fmt.Printf("messages %d, pcap frames %d each: %d frames expected, %d held, %d lost (%.4f %%), %d early (before the recorder started)\n",
		len(os.Args)-2, len(fr), total, held, lost, 100*float64(lost)/float64(max(total, 1)), early)
	if len(lens) > 0 {
		fmt.Printf("message lengths: min %.3f s, median %.3f s, max %.3f s (the pcap: %.3f s)\n", float64(lens[0])/8000,
			float64(lens[len(lens)/2])/8000, float64(lens[len(lens)-1])/8000, float64(pos[len(pos)-1]+len(fr[len(fr)-1]))/8000)
	}
	if worst > 0 {
		fmt.Printf("worst message: %d frames lost (%s)\n", worst, worstFile)
	}
}
EOF
(cd "$work/vmcheck" && GOWORK=off GOFLAGS='' go build -o "$work/vmcheck-bin" .)

# Ports: loopback ports nobody uses now, above the server's RTP ports, for
# the callers (SIP) and their media (-mp, even; SIPp also takes the next
# ones). The same for every step.
lib_ports_snapshot
next_port=$((rtp_high + 1 + (rtp_high + 1) % 2))
caller_ports=() media_ports=()
for _ in $(seq "$GENERATORS"); do
	lib_free_port 4; caller_ports+=("$port")
	lib_free_port 4; media_ports+=("$port")
done

greeting_s=5.2
if [ "$GREETING" = short ]; then
	# 0.2 s of silence: a 44-byte WAV header (16-bit 8 kHz mono), 3,200 zero bytes.
	{
		printf 'RIFF\xa4\x0c\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00'
		printf 'data\x80\x0c\x00\x00'
		head -c 3200 /dev/zero
	} >"$work/greeting.wav"
	greeting_s=0.2
fi
# workspace DATA: the number, one member without a phone, a trunk trusting
# the callers' ports, the greeting.
workspace() {
	local data=$1 p allow=()
	"$bin" --data "$data" number add "$NUMBER" >/dev/null
	"$bin" --data "$data" user add alice --password password-alice >/dev/null
	"$bin" --data "$data" number member add "$NUMBER" alice >/dev/null
	for p in "${caller_ports[@]}"; do allow+=(--allow "127.0.0.1:$p"); done
	"$bin" --data "$data" trunk add carrier --address "127.0.0.1:${caller_ports[0]}" "${allow[@]}" >/dev/null
	if [ "$GREETING" = short ]; then
		"$bin" --data "$data" voicemail greeting set "$NUMBER" "$work/greeting.wav" >/dev/null
	fi
}

hexport() { printf '%04X' "$1"; }
rtp_lo=$(hexport "$rtp_low") rtp_hi=$(hexport "$rtp_high")
common=(-i 127.0.0.1 -mi 127.0.0.1 -t u1 -nostdin -trace_err)
[ "${TRACE:-}" = 1 ] && common+=(-trace_msg)

# Per step, for the summary: CPU per stream, plateau CPU, peak RSS, frames.
declare -A s_per_stream s_peak s_lost s_frames
# step CALLS: one bounded step on a fresh server; prints a row, writes its
# details to DIR/details, sets step_ok, step_why, r_p50, r_p99, m_srv_cpu
# (server CPU at the plateau, % of one core) and achieved (the most RTP
# streams open at once).
step() {
	local calls=$1
	local dir=$work/step-$calls
	local data=$dir/data
	local per=$((calls / GENERATORS))
	local per_rate=$((calls / START_SECONDS / GENERATORS))
	[ "$per_rate" -ge 1 ] || per_rate=1
	local total=$((per * GENERATORS))
	local limit=$((40 + per / per_rate))
	local g p rc codes="" sip_hex step_load
	mkdir -p "$dir"
	workspace "$data"
	step_load=$(lib_load)
	# Every caller of the step calls the one number: no per-number cap.
	lib_start_partyline "$bin" "$data" --rtp-ports "$RTP_PORTS" --voicemail-per-number 100000
	sip_hex=$(hexport "$sport")

	# The sampler: every 0.5 s a line "S <time> <server CPU ticks> <open RTP
	# sockets> <RSS KiB>" and, per open RTP socket and for the SIP socket, a
	# line "D <inode> <drops>". It runs until killed (by its PID).
	(
		while kill -0 "$server" 2>/dev/null; do
			now=$(date +%s.%N)
			c=$(server_ticks)
			r=$(awk '/VmRSS/{print $2}' "/proc/$server/status")
			awk -v lo="$rtp_lo" -v hi="$rtp_hi" -v sp="$sip_hex" -v now="$now" -v c="$c" -v r="$r" '
				NR > 1 { split($2, a, ":"); p = a[2]
					if ("x" p >= "x" lo && "x" p <= "x" hi) { n++; print "D", $10, $NF }
					else if ("x" p == "x" sp) print "D", "sip-" $10, $NF }
				END { print "S", now, c, n + 0, r }' /proc/net/udp
			sleep 0.5
		done
	) >"$dir/samples" &
	sampler=$!

	lib_measure_begin
	for g in $(seq "$GENERATORS"); do
		mkdir -p "$dir/caller$g"
		(cd "$dir/caller$g" && exec sipp -sf "$work/vm_caller_pcap.xml" "$sip" "${common[@]}" "${RTT_FLAGS[@]}" \
			-p "${caller_ports[$((g - 1))]}" -mp "${media_ports[$((g - 1))]}" -m "$per" -l "$per" -r "$per_rate" \
			-d "$PREPLAY" -cid_str "vm$calls-$g-%u" -timeout "${limit}s" -timeout_error >stdout 2>stderr) &
		pids+=($!)
	done
	lib_wait_pids
	# Every call ended with the caller's BYE; wait (bounded: 30 s) until the
	# server has logged each call's voicemail line.
	for _ in $(seq 300); do
		[ "$(grep -c 'msg=voicemail ' "$work/server.log")" -ge "$total" ] && break
		sleep 0.1
	done
	lib_measure_end
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=""
	local peak run_cpu=$m_srv_cpu
	peak=$(server_peak_mib)

	sipp_totals "$dir"/caller*/
	local ok=$t_ok failed=$t_failed logged hangups stored
	rtt_stats "$dir"/caller*/
	logged=$(grep -c 'msg=voicemail ' "$work/server.log" || true)
	hangups=$(grep 'msg=voicemail ' "$work/server.log" | grep -cE 'reason=hangup .*message=true' || true)
	"$bin" --data "$data" -o json voicemail list --number "$NUMBER" >"$dir/voicemail.json"
	stored=$(jq length "$dir/voicemail.json")

	# Export every message (4 at a time) and compare it with the pcap.
	mkdir -p "$dir/export"
	jq -r '.[].id' "$dir/voicemail.json" | xargs -r -P 4 -I{} "$bin" --data "$data" voicemail export {} --out "$dir/export/{}.wav" >/dev/null
	: >"$dir/check.out"
	if [ "$stored" -gt 0 ]; then
		"$work/vmcheck-bin" "$PCAP" "$dir"/export/*.wav >"$dir/check.out" 2>"$dir/check.err" || true
	fi
	lib_stop_server
	mv "$work/server.log" "$dir/server.log"

	local expected lost early rtp_drops sip_drops secs streams top pcpu pstream prss
	read -r expected lost early < <(awk '/frames expected/ {print $7, $12, $16}' "$dir/check.out")
	expected=${expected:-0} lost=${lost:-0} early=${early:-0}
	# Kernel drops on the server's sockets: the largest count seen per socket.
	read -r rtp_drops sip_drops < <(awk '$1 == "D" { if ($3 > m[$2]) m[$2] = $3 }
		END { for (k in m) if (k ~ /^sip-/) s += m[k]; else r += m[k]; print r + 0, s + 0 }' "$dir/samples")
	# The plateau: consecutive samples both with at least 95 % of the calls'
	# RTP sockets open: seconds, streams on average, the most at once, server
	# CPU (% of one core), per stream, RSS (MiB); "-" when never reached.
	read -r secs streams top pcpu pstream prss < <(awk -v want="$total" -v hz="$TICKS" '
		$1 == "S" {
			if (pt != "" && pn >= 0.95 * want && $4 >= 0.95 * want) {
				cpu += $3 - pc; secs += $2 - pt; streams += ($4 + pn) / 2 * ($2 - pt); n++; rss += $5
			}
			if ($4 > top) top = $4
			pt = $2; pc = $3; pn = $4
		}
		END {
			if (secs == 0) { printf "- - %d - - -\n", top; exit }
			avg = streams / secs
			printf "%.1f %.0f %d %.1f %.3f %.0f\n", secs, avg, top, 100 * cpu / hz / secs, 100 * cpu / hz / secs / avg, rss / n / 1024
		}' "$dir/samples")
	local loss_pct=-
	[ "$expected" -gt 0 ] && loss_pct=$(printf '%.3f' "$(echo "scale=6; 100 * $lost / $expected" | bc)")

	printf '%6d %6d %6d %6d %6d %15s %7s %5d %5s %5s %6s%% %6s%% %8s%% %5s%% %5s%% %5d %4d %8s %5d %s\n' \
		"$calls" "$top" "$ok" "$failed" "$stored" "$lost/$expected" "$loss_pct" "$early" "$r_p50" "$r_p99" \
		"$run_cpu" "$pcpu" "$pstream" "$m_sipp_cpu" "$m_busy" "$rtp_drops" "$sip_drops" "$prss" "$peak" "$codes"
	{
		echo "$calls at once: load average at start $step_load; $total calls at $((per_rate * GENERATORS)) calls/s; exit codes:$codes"
		echo "  calls: $ok completed, $failed failed; voicemail lines logged: $logged ($hangups messages ended by the caller's BYE); stored: $stored; setup times: $r_n"
		jq -r --argjson want 7.08 '
			[.[].duration_s] as $d | ($d | sort) as $s | ($d | length) as $n |
			if $n == 0 then "  durations: none" else
			"  durations: min \($s[0]) s, median \($s[($n / 2 | floor)]) s, max \($s[$n - 1]) s; \([$d[] | select(. < $want)] | length) of \($n) shorter than the pcap'"'"'s \($want) s"
			end' "$dir/voicemail.json"
		sed 's/^/  /' "$dir/check.out" "$dir/check.err" 2>/dev/null | head -20
		if [ "$secs" = - ]; then
			echo "  plateau: never 95 % of $total streams at once (at most $top)"
		else
			echo "  plateau: $secs s with $streams streams on average (at most $top): server $pcpu % of one core, $pstream % per stream; RSS $prss MiB"
		fi
		echo "  server CPU over the step: $run_cpu % of one core in $(printf '%.1f' "$m_wall") s; peak RSS (VmHWM) $peak MiB"
	} >"$dir/details"

	s_per_stream[$calls]=$pstream s_peak[$calls]=$peak s_lost[$calls]=$lost s_frames[$calls]=$expected
	m_srv_cpu=$pcpu achieved=$top
	local why=()
	[ "$failed" -eq 0 ] && [ "$ok" -eq "$total" ] || why+=("$ok of $total calls completed")
	[ -z "$(echo "$codes" | tr -d ' 0')" ] || why+=("SIPp exit codes$codes")
	[ "$stored" -eq "$total" ] || why+=("$stored of $total messages stored")
	{ [ "$expected" -gt 0 ] && [ $((lost * 1000)) -lt "$expected" ]; } || why+=("$lost of $expected frames lost")
	[ "$r_n" -ge "$total" ] || why+=("$r_n of $total setup times")
	if [ "${#why[@]}" = 0 ]; then
		step_ok=1 step_why=""
		[ "$r_p99" -le "$P99_LIMIT_MS" ] || step_why="p99 setup $r_p99 ms over $P99_LIMIT_MS ms"
	else
		step_ok=0 step_why=$(printf '%s; ' "${why[@]}")
		step_why=${step_why%; }
	fi
	last_calls=$calls
	[ "${KEEP:-}" = 1 ] || rm -rf "$data" "$dir/export"
}

echo "load average at start: $load_at_start"
echo "partyline voicemail at once: $(lib_machine), $(go version | cut -d' ' -f3)"
echo "RTP $RTP_PORTS; $GENERATORS caller SIPps from 127.0.0.1:${caller_ports[*]} (trusted trunk), media from :${media_ports[*]}"
echo "each step: a fresh server; its calls start within $START_SECONDS s; greeting $greeting_s s + beep 0.3 s; the pcap plays $PREPLAY ms after the ACK"
echo "held: every call completed and stored, under 0.1 % of the frames lost, p99 setup <= $P99_LIMIT_MS ms"
echo "at once: recordings per step; streams: most RTP sockets open at once; frames lost/expected against the pcap (early ones apart);"
echo "p50/p99: the caller's INVITE to its 200, ms; CPU in % of one core: server over the step, at the plateau, per stream, SIPps, machine;"
echo "drops: kernel receive drops on the server's RTP sockets and its SIP socket; RSS: server at the plateau, peak (VmHWM), MiB"
printf '%6s %6s %6s %6s %6s %15s %7s %5s %5s %5s %7s %7s %9s %6s %6s %5s %4s %8s %5s %s\n' "at once" streams calls failed stored \
	"frames lost" "loss %" early p50 p99 server plateau "/stream" SIPp machine RTP SIP "RSS" peak "exit codes"
step_calls() { step "$1"; }
last_calls=""
lib_ramp step_calls "${STEPS[@]}"
[ "$stop_reason" = "every step held" ] || stop_reason="$last_calls at once: $step_why"

echo "details per step:"
for c in "${STEPS[@]}"; do
	[ -r "$work/step-$c/details" ] && cat "$work/step-$c/details"
done
if [ "$held" = 0 ]; then
	echo "highest concurrency held with 0 failures: none; stopped at $stop_reason"
	echo "result: bench=vm target=partyline held=0 achieved=0 p50_ms=- p99_ms=- server_cpu=- cpu_per_stream=- peak_mib=- frames_lost=- frames=- load_at_start=${load_at_start// /,}"
	exit 1
fi
echo "highest concurrency held with 0 failures: $held recordings at once ($held_achieved streams at most; p50 $held_p50 ms, p99 $held_p99 ms setup; server $held_srv_cpu % of one core at the plateau, ${s_per_stream[$held]} % per stream; ${s_lost[$held]} of ${s_frames[$held]} frames lost); stopped at $stop_reason"
echo "server peak memory at $held at once: ${s_peak[$held]} MiB (VmHWM of that step's server)"
echo "result: bench=vm target=partyline held=$held achieved=$held_achieved p50_ms=$held_p50 p99_ms=$held_p99 server_cpu=$held_srv_cpu cpu_per_stream=${s_per_stream[$held]} peak_mib=${s_peak[$held]} frames_lost=${s_lost[$held]} frames=${s_frames[$held]} load_at_start=${load_at_start// /,}"
