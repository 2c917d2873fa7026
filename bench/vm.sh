#!/usr/bin/env bash
# vm.sh: voicemail recordings at once, SIPp against the built partyline,
# everything on this machine and on loopback.
#
# A call: the carrier (SIPp, testdata/sipp/vm_caller_pcap.xml, from a
# trusted trunk port, no digest) INVITEs the shared number, whose only
# member has no phone, so voicemail answers at once: partyline plays a
# 0.2 s greeting (GREETING=default keeps the built-in 5.2 s one) and the
# 300 ms beep, then records. PREPLAY ms after its ACK the caller plays
# SIPp's stock /usr/share/sip-tester/g711a.pcap (PCMA, 236 packets of
# 30 ms, 7.08 s) and hangs up 7.6 s later; partyline stores the message.
# CALLS calls start within CALLS/RATE seconds, so with the defaults (500
# calls, 250/s) all 500 record at the same time for about 5 s.
#
# Measured:
# - messages stored, their durations against the pcap's 7.08 s (a message
#   ends at its last packet, so a short one lost its end);
# - packet loss at the recorder, exactly: every message is exported and
#   compared, 30 ms frame by frame, with the pcap's audio (the recorder lays
#   packets out by RTP timestamp and a lost or late packet leaves silence,
#   which no A-law frame decodes to). A frame that differs is lost. Frames
#   before the message's first one arrived before the recorder started (the
#   greeting outlasted PREPLAY) and are counted apart as "early";
# - kernel drops on the server's RTP sockets (/proc/net/udp, sampled every
#   0.5 s; a socket's drops after its last sample are missed) and on its SIP
#   socket;
# - server CPU: over the whole run, and at the plateau, the samples while at
#   least 95 % of CALLS RTP sockets were open, divided by the open sockets:
#   CPU per stream (a stream: one caller's RTP in, partyline's 20 ms
#   silence out, the recorder); server RSS at the plateau and its peak.
#
# Usage: bench/vm.sh
# Environment: CALLS (500), RATE (250 calls/s in all), GENERATORS (2 caller
#   SIPps sharing CALLS and RATE), PREPLAY (1500 ms), GREETING (short or
#   default), RTP_PORTS (20000-21999), KEEP=1 keeps the work folder (server
#   log, SIPp logs, data, exported messages), TRACE=1 adds SIPp message logs.
# Needs: go, sipp (Debian package sip-tester, which also ships the pcap),
#   jq, bc; root (SIPp replays the pcap through a raw socket).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

CALLS=${CALLS:-500}
RATE=${RATE:-250}
GENERATORS=${GENERATORS:-2}
PREPLAY=${PREPLAY:-1500}
GREETING=${GREETING:-short}
RTP_PORTS=${RTP_PORTS:-20000-21999}
NUMBER=+15551230001
PCAP=/usr/share/sip-tester/g711a.pcap

root=$(cd "$(dirname "$0")/.." && pwd)
scen=$root/testdata/sipp
for tool in sipp jq bc go; do
	command -v "$tool" >/dev/null || { echo "vm.sh: $tool not found (apt-get install sip-tester jq bc)" >&2; exit 1; }
done
[ -r "$PCAP" ] || { echo "vm.sh: $PCAP missing (apt-get install sip-tester)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "vm.sh: SIPp's play_pcap_audio needs root (a raw socket)" >&2; exit 1; }
rtp_low=${RTP_PORTS%-*} rtp_high=${RTP_PORTS#*-}
[ $(((rtp_high - rtp_low) / 2 + 1)) -ge "$CALLS" ] || { echo "vm.sh: RTP_PORTS $RTP_PORTS holds fewer than $CALLS even ports" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/partyline-vm.XXXXXX)
sampler=""
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
	lib_stop_server
	if [ "${KEEP:-}" = 1 ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin=$work/partyline
data=$work/data
(cd "$root" && go build -o "$bin" ./cmd/partyline)

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

func equal(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
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
			if len(rec) >= len(fr[k]) && equal(rec[:len(fr[k])], fr[k]) {
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
			if at+len(fr[j]) <= len(rec) && equal(rec[at:at+len(fr[j])], fr[j]) {
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

# Ports: loopback ports nobody uses now, for the callers (SIP) and their
# media (-mp, even; SIPp also takes the next ones).
lib_ports_snapshot
next_port=22000
caller_ports=() media_ports=()
for _ in $(seq "$GENERATORS"); do
	lib_free_port 4; caller_ports+=("$port")
	lib_free_port 4; media_ports+=("$port")
done

# Workspace: the number, one member without a phone, a trunk trusting the
# callers' ports, the greeting.
"$bin" --data "$data" number add "$NUMBER" >/dev/null
"$bin" --data "$data" user add alice --password password-alice >/dev/null
"$bin" --data "$data" number member add "$NUMBER" alice >/dev/null
allow=()
for p in "${caller_ports[@]}"; do allow+=(--allow "127.0.0.1:$p"); done
"$bin" --data "$data" trunk add carrier --address "127.0.0.1:${caller_ports[0]}" "${allow[@]}" >/dev/null
greeting_s=5.2
if [ "$GREETING" = short ]; then
	# 0.2 s of silence: a 44-byte WAV header (16-bit 8 kHz mono), 3,200 zero bytes.
	{
		printf 'RIFF\xa4\x0c\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00'
		printf 'data\x80\x0c\x00\x00'
		head -c 3200 /dev/zero
	} >"$work/greeting.wav"
	"$bin" --data "$data" voicemail greeting set "$NUMBER" "$work/greeting.wav" >/dev/null
	greeting_s=0.2
fi

lib_start_partyline "$bin" "$data" --rtp-ports "$RTP_PORTS"

ticks=$TICKS
cpu_ticks() { server_ticks; }
load=$(lib_load)
hexport() { printf '%04X' "$1"; }
rtp_lo=$(hexport "$rtp_low") rtp_hi=$(hexport "$rtp_high") sip_hex=$(hexport "$sport")

# The sampler: every 0.5 s a line "S <time> <server CPU ticks> <open RTP
# sockets> <RSS KiB>" and, per open RTP socket and for the SIP socket, a
# line "D <inode> <drops>". It runs until killed (by its PID).
(
	while kill -0 "$server" 2>/dev/null; do
		now=$(date +%s.%N)
		c=$(cpu_ticks "$server")
		r=$(awk '/VmRSS/{print $2}' "/proc/$server/status")
		awk -v lo="$rtp_lo" -v hi="$rtp_hi" -v sp="$sip_hex" -v now="$now" -v c="$c" -v r="$r" '
			NR > 1 { split($2, a, ":"); p = a[2]
				if ("x" p >= "x" lo && "x" p <= "x" hi) { n++; print "D", $10, $NF }
				else if ("x" p == "x" sp) print "D", "sip-" $10, $NF }
			END { print "S", now, c, n + 0, r }' /proc/net/udp
		sleep 0.5
	done
) >"$work/samples" &
sampler=$!

per=$((CALLS / GENERATORS))
per_rate=$((RATE / GENERATORS))
{ [ "$per" -ge 1 ] && [ "$per_rate" -ge 1 ]; } || { echo "vm.sh: CALLS and RATE must be at least GENERATORS" >&2; exit 1; }
total=$((per * GENERATORS))
limit=$((40 + per / per_rate))
common=(-i 127.0.0.1 -mi 127.0.0.1 -t u1 -nostdin -trace_err)
[ "${TRACE:-}" = 1 ] && common+=(-trace_msg)
c0=$(cpu_ticks "$server") s0=$(sipp_ticks)
w0=$(date +%s.%N)
for g in $(seq "$GENERATORS"); do
	mkdir -p "$work/caller$g"
	(cd "$work/caller$g" && exec sipp -sf "$scen/vm_caller_pcap.xml" "$sip" "${common[@]}" \
		-p "${caller_ports[$((g - 1))]}" -mp "${media_ports[$((g - 1))]}" -m "$per" -l "$per" -r "$per_rate" \
		-d "$PREPLAY" -cid_str "vm-$g-%u" -timeout "${limit}s" -timeout_error >stdout 2>stderr) &
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
s1=$(sipp_ticks)

# Every call ended with the caller's BYE; wait (bounded: 30 s) until the
# server has logged each call's voicemail line.
for _ in $(seq 300); do
	[ "$(grep -c 'msg=voicemail ' "$work/server.log")" -ge "$total" ] && break
	sleep 0.1
done
c1=$(cpu_ticks "$server")
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=""
peak=$(server_peak_mib)

sipp_totals "$work"/caller*/
ok=$t_ok failed=$t_failed
logged=$(grep -c 'msg=voicemail ' "$work/server.log" || true)
hangups=$(grep 'msg=voicemail ' "$work/server.log" | grep -cE 'reason=hangup .*message=true' || true)
"$bin" --data "$data" -o json voicemail list --number "$NUMBER" >"$work/voicemail.json"
stored=$(jq length "$work/voicemail.json")

echo "load average at start: $load"
echo "partyline voicemail at once: $(lib_machine), $(go version | cut -d' ' -f3)"
echo "server $sip, RTP $RTP_PORTS; $GENERATORS caller SIPps from 127.0.0.1:${caller_ports[*]} (trusted trunk), media from :${media_ports[*]}"
echo "$total calls at $RATE calls/s; greeting $greeting_s s + beep 0.3 s; the pcap plays $PREPLAY ms after the ACK; exit codes:$codes"
echo "calls: $ok completed, $failed failed; voicemail lines logged: $logged ($hangups messages ended by the caller's BYE); stored: $stored"
jq -r --argjson want 7.08 '
	[.[].duration_s] as $d | ($d | sort) as $s | ($d | length) as $n |
	if $n == 0 then "durations: none" else
	"durations: min \($s[0]) s, median \($s[($n / 2 | floor)]) s, max \($s[$n - 1]) s; \([$d[] | select(. < $want)] | length) of \($n) shorter than the pcap'"'"'s \($want) s"
	end' "$work/voicemail.json"

# Export every message (4 at a time) and compare it with the pcap.
mkdir -p "$work/export"
jq -r '.[].id' "$work/voicemail.json" | xargs -r -P 4 -I{} "$bin" --data "$data" voicemail export {} --out "$work/export/{}.wav" >/dev/null
: >"$work/check.out"
if [ "$stored" -gt 0 ]; then
	"$work/vmcheck-bin" "$PCAP" "$work"/export/*.wav | tee "$work/check.out"
fi

# Kernel drops on the server's sockets: the largest count seen per socket.
awk '$1 == "D" { if ($3 > m[$2]) m[$2] = $3 }
	END { for (k in m) if (k ~ /^sip-/) s += m[k]; else r += m[k]
		printf "kernel receive drops: RTP sockets %d, SIP socket %d\n", r, s }' "$work/samples"
wall=$(echo "$w1 - $w0" | bc)
echo "server CPU over the run: $(echo "scale=2; ($c1 - $c0) / $ticks" | bc) s in $(printf '%.1f' "$wall") s ($(echo "100 * ($c1 - $c0) / $ticks / $wall" | bc) % of one core on average); SIPps: $(echo "100 * ($s1 - $s0) / $ticks / $wall" | bc) %"
# The plateau: consecutive samples both with at least 95 % of the calls'
# RTP sockets open.
awk -v want="$total" -v hz="$ticks" '
	$1 == "S" {
		if (pt != "" && pn >= 0.95 * want && $4 >= 0.95 * want) {
			cpu += $3 - pc; secs += $2 - pt; streams += ($4 + pn) / 2 * ($2 - pt); n++; rss += $5
		}
		if ($4 > top) top = $4
		pt = $2; pc = $3; pn = $4
	}
	END {
		if (secs == 0) { printf "plateau: never %d %% of %d streams at once (at most %d)\n", 95, want, top; exit }
		avg = streams / secs
		printf "plateau: %.1f s with %.0f streams on average (at most %d): server %.1f %% of one core, %.3f %% per stream; RSS %.0f MiB\n",
			secs, avg, top, 100 * cpu / hz / secs, 100 * cpu / hz / secs / avg, rss / n / 1024
	}' "$work/samples"
echo "server peak RSS (VmHWM): $peak MiB"

# The verdict: every call completed and stored, under 0.1 % of the frames lost.
read -r expected lost < <(awk '/frames expected/ {print $7, $12}' "$work/check.out")
if [ "$failed" -eq 0 ] && [ "$ok" -eq "$total" ] && [ "$stored" -eq "$total" ] && [ "${expected:-0}" -gt 0 ] &&
	[ $((lost * 1000)) -lt "$expected" ]; then
	echo "result: $total recordings at once, ${lost} of ${expected} frames lost: under 0.1 %"
	echo "result: bench=vm target=partyline calls=$total stored=$stored frames_lost=$lost frames=$expected peak_mib=$peak load_at_start=${load// /,}"
else
	echo "result: NOT MET ($ok of $total calls completed, $stored stored, ${lost:-?} of ${expected:-?} frames lost)"
	exit 1
fi
