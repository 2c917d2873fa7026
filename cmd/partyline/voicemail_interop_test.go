package main

// Voicemail interop: the carrier's SIPp calls the shared number through the
// trusted trunk, nobody answers, and partyline's voicemail takes the call;
// baresip, a real softphone, leaves a message as a member; a SIPp phone
// subscribes to message-summary and follows the lamp. Everything runs on
// loopback against the built binary, each case on its own server, the
// cases in parallel; every process is bounded in time and stopped by its
// PID. The scenarios live in testdata/sipp/vm_*.xml.
//
// Where the caller's media must be exact (a key press, silence, a missing
// stream, audio measured by RTP timestamps), the SIPp caller offers the
// test's own RTP socket in its SDP (vm_caller_hungup.xml, -key rtp_port)
// and the test plays the caller's side of the media itself: it hears the
// greeting and the beep there, learns partyline's RTP address from them,
// and sends from the address it offered.
//
// Every server gets a 0.2 s silent greeting (voicemail greeting set), so
// the recording starts 0.5 s after the answer, after the 0.3 s beep.

import (
	"bytes"
	binenc "encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/media"
)

const (
	// vmPcap is SIPp's stock recording: PCMA, 236 packets of 30 ms.
	vmPcap = "/usr/share/sip-tester/g711a.pcap"
	// vmPTAudio and vmPTEvent are the payload types the vm_caller_*.xml
	// offers use: PCMA and telephone-event.
	vmPTAudio = 8
	vmPTEvent = 101
	// vmSilent is the level (absolute sample value) at or below which a
	// sample counts as silence when recordings are compared: the A-law
	// codes nearest zero decode to ±8.
	vmSilent = 64
)

// newVMLab starts a server whose shared number has users as members (none
// of them with a registered device, so calls go to voicemail at once) and
// a 0.2 s silent greeting; setup runs before the server starts.
func newVMLab(t *testing.T, users []string, setup func(dir string)) *forkLab {
	t.Helper()
	return newForkLab(t, users, func(dir string) {
		wav := filepath.Join(t.TempDir(), "greeting.wav")
		vmWriteWAV(t, wav, make([]int16, 1600))
		ok(t, dir, "voicemail", "greeting", "set", forkNumber, wav)
		if setup != nil {
			setup(dir)
		}
	})
}

// vmSipp starts one SIPp call of scenario from port, with its own Call-ID
// and media port; extra adds arguments (-d, -key, -inf).
func (lab *forkLab) vmSipp(t *testing.T, name, scenario string, port int, extra ...string) *forkPeer {
	t.Helper()
	bin := requirePeer(t, "sipp")
	sf, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "sipp", scenario))
	args := []string{"-sf", sf, fmt.Sprintf("127.0.0.1:%d", lab.port),
		"-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", strconv.Itoa(port), "-mp", strconv.Itoa(freeEvenPort(t)),
		"-t", "u1", "-m", "1", "-l", "1", "-cid_str", "vm-" + name + "-%u-%p@partyline.test",
		"-timeout", "40s", "-timeout_error", "-nostdin", "-trace_err", "-trace_msg"}
	return startForkPeer(t, name+" ("+scenario+")", bin, append(args, extra...)...)
}

// vmOutcome is what the server's "voicemail" log line says about a call.
type vmOutcome struct {
	reason  string
	seconds float64
	message bool
	line    string
}

var vmLogFields = regexp.MustCompile(`\breason=(\S+) seconds=(\S+) message=(true|false)`)

// awaitVoicemail waits for the server's voicemail line of the (only) call.
func (lab *forkLab) awaitVoicemail(t *testing.T) vmOutcome {
	t.Helper()
	l := lab.srv.await(t, "msg=voicemail ")
	m := vmLogFields.FindStringSubmatch(l)
	if m == nil {
		t.Fatalf("voicemail log line without reason, seconds and message: %s", l)
	}
	s, _ := strconv.ParseFloat(m[2], 64)
	return vmOutcome{reason: m[1], seconds: s, message: m[3] == "true", line: l}
}

// voicemails lists the number's messages through the CLI.
func (lab *forkLab) voicemails(t *testing.T) []inbox.Voicemail {
	t.Helper()
	var vms []inbox.Voicemail
	if err := json.Unmarshal([]byte(ok(t, lab.dir, "-o", "json", "voicemail", "list", "--number", forkNumber)), &vms); err != nil {
		t.Fatal(err)
	}
	return vms
}

// oneVoicemail checks that the number has exactly one message, from
// from in codec, and returns it. The server logs its voicemail line before
// it stores the message, so this polls the list until the message is there:
// at most 100 looks, 50 ms apart.
func (lab *forkLab) oneVoicemail(t *testing.T, from, codec string) inbox.Voicemail {
	t.Helper()
	vms := lab.voicemails(t)
	for polls := 0; len(vms) == 0 && polls < 100; polls++ {
		time.Sleep(50 * time.Millisecond)
		vms = lab.voicemails(t)
	}
	if len(vms) != 1 {
		t.Fatalf("want one voicemail, got:\n%s\nserver log:\n%s", forkJSON(vms), lab.srv.logText())
	}
	v := vms[0]
	if v.Number != forkNumber || v.From != from || v.Codec != codec || len(v.HeardBy) != 0 {
		t.Errorf("want a new voicemail on %s from %s in %s:\n%s", forkNumber, from, codec, forkJSON(v))
	}
	return v
}

// export saves a message through the CLI (args go first: --as USER) and
// returns its samples.
func (lab *forkLab) export(t *testing.T, id string, args ...string) []int16 {
	t.Helper()
	out := filepath.Join(t.TempDir(), "message.wav")
	ok(t, lab.dir, append(args, "voicemail", "export", id, "--out", out)...)
	return vmReadWAV(t, out)
}

// calls returns the number's call records, without waiting for them to end.
func (lab *forkLab) calls(t *testing.T) []inbox.Call {
	t.Helper()
	var calls []inbox.Call
	if err := json.Unmarshal([]byte(ok(t, lab.dir, "-o", "json", "calls", "--number", forkNumber)), &calls); err != nil {
		t.Fatal(err)
	}
	return calls
}

// checkVoicemailRecord checks the call record a stored message ended.
func checkVoicemailRecord(t *testing.T, c inbox.Call, v inbox.Voicemail) {
	t.Helper()
	if c.Disposition != inbox.WentToVoicemail || c.VoicemailID != v.ID || v.CallID != c.ID || c.AnsweredAt == nil || c.EndedAt == nil {
		t.Errorf("want the call record ended as voicemail %s:\n%s\nvoicemail:\n%s", v.ID, forkJSON(c), forkJSON(v))
	}
}

// vmWriteWAV writes samples as a 16-bit 8 kHz mono WAV.
func vmWriteWAV(t *testing.T, path string, samples []int16) {
	t.Helper()
	var b bytes.Buffer
	if err := media.EncodeWAV(&b, samples); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// vmReadWAV reads a WAV file that must be what export promises: 16-bit
// PCM, 8 kHz, mono.
func vmReadWAV(t *testing.T, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s is not a WAV file", path)
	}
	var format []byte
	for rest := b[12:]; len(rest) >= 8; {
		id, size := string(rest[:4]), int(binenc.LittleEndian.Uint32(rest[4:8]))
		if size > len(rest)-8 {
			t.Fatalf("%s: chunk %q of %d bytes overruns the file", path, id, size)
		}
		body := rest[8 : 8+size]
		switch id {
		case "fmt ":
			format = body
		case "data":
			if len(format) < 16 || binenc.LittleEndian.Uint16(format[0:]) != 1 || binenc.LittleEndian.Uint16(format[2:]) != 1 ||
				binenc.LittleEndian.Uint32(format[4:]) != 8000 || binenc.LittleEndian.Uint16(format[14:]) != 16 {
				t.Fatalf("%s: want 16-bit PCM, 8 kHz, mono; fmt chunk % x", path, format)
			}
			samples := make([]int16, size/2)
			for i := range samples {
				samples[i] = int16(binenc.LittleEndian.Uint16(body[2*i:]))
			}
			return samples
		}
		rest = rest[8+size+size%2:]
	}
	t.Fatalf("%s has no data chunk", path)
	return nil
}

// vmTone is seconds of a 440 Hz tone at about -12 dBFS.
func vmTone(seconds float64) []int16 {
	out := make([]int16, int(seconds*media.SampleRate))
	for i := range out {
		out[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/media.SampleRate))
	}
	return out
}

func meanAbs(x []int16) float64 {
	if len(x) == 0 {
		return 0
	}
	s := 0.0
	for _, v := range x {
		s += math.Abs(float64(v))
	}
	return s / float64(len(x))
}

func rms(x []int16) float64 {
	if len(x) == 0 {
		return 0
	}
	s := 0.0
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

// trimSilence returns x without its leading and trailing silence.
func trimSilence(x []int16) []int16 {
	loud := func(v int16) bool { return v > vmSilent || v < -vmSilent }
	for len(x) > 0 && !loud(x[0]) {
		x = x[1:]
	}
	for len(x) > 0 && !loud(x[len(x)-1]) {
		x = x[:len(x)-1]
	}
	return x
}

// sameAudio fails unless got and sent are equal sample for sample once
// leading and trailing silence is taken off both.
func sameAudio(t *testing.T, got, sent []int16) {
	t.Helper()
	g, s := trimSilence(got), trimSilence(sent)
	if len(s) == 0 {
		t.Fatal("the sent audio is all silence")
	}
	for i := 0; i < min(len(g), len(s)); i++ {
		if g[i] != s[i] {
			t.Fatalf("recorded audio differs from the sent audio at sample %d of %d (after %d samples of leading silence): %d, want %d",
				i, len(s), len(got)-len(trimSilence(got))-trailing(got), g[i], s[i])
		}
	}
	if len(g) != len(s) {
		t.Fatalf("recorded %d samples between the first and last sound, sent %d", len(g), len(s))
	}
}

// trailing counts x's trailing silent samples.
func trailing(x []int16) int {
	n := 0
	for i := len(x) - 1; i >= 0 && x[i] <= vmSilent && x[i] >= -vmSilent; i-- {
		n++
	}
	return n
}

// pcapAudio reads an A-law RTP capture (classic pcap, Ethernet, IPv4, UDP)
// and returns its audio decoded and laid out at its RTP timestamps, as the
// recorder lays out what it receives, and the number of RTP packets.
func pcapAudio(t *testing.T, path string) ([]int16, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		t.Fatalf("%s: no pcap header", path)
	}
	var order binenc.ByteOrder
	switch binenc.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d: // micro- or nanosecond timestamps
		order = binenc.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binenc.BigEndian
	default:
		t.Fatalf("%s: not a pcap file", path)
	}
	if link := order.Uint32(b[20:]); link != 1 {
		t.Fatalf("%s: link type %d, want 1 (Ethernet)", path, link)
	}
	type chunk struct {
		ts      uint32
		payload []byte
	}
	var chunks []chunk
	for rest := b[24:]; len(rest) >= 16; {
		n := int(order.Uint32(rest[8:]))
		if n > len(rest)-16 {
			t.Fatalf("%s: truncated packet", path)
		}
		frame := rest[16 : 16+n]
		rest = rest[16+n:]
		if len(frame) < 14+20 || binenc.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0F) * 4
		if ip[0]>>4 != 4 || ip[9] != 17 || len(ip) < ihl+8+12 {
			continue
		}
		udp := ip[ihl:]
		var p rtp.Packet
		if err := p.Unmarshal(udp[8:]); err != nil || p.PayloadType != vmPTAudio {
			continue
		}
		chunks = append(chunks, chunk{p.Timestamp, p.Payload})
	}
	if len(chunks) == 0 {
		t.Fatalf("%s: no PCMA RTP packets", path)
	}
	var out []int16
	for _, c := range chunks {
		pos := int(int32(c.ts - chunks[0].ts))
		if pos < 0 || pos > 60*media.SampleRate {
			t.Fatalf("%s: RTP timestamp %d out of order", path, c.ts)
		}
		if end := pos + len(c.payload); end > len(out) {
			out = append(out, make([]int16, end-len(out))...)
		}
		media.PCMA.Decode(out[pos:pos], c.payload)
	}
	return out, len(chunks)
}

// vmRTP is the caller's media side, played by the test: a socket offered
// in the SDP (vm_caller_hungup.xml) that sends RTP from the answer on, as
// phones do (partyline sends nothing before the caller's first packet, and
// then only to where it came from), hears the greeting and the beep, and
// sends PCMA and RFC 4733 events.
type vmRTP struct {
	conn   *net.UDPConn
	port   int
	server netip.AddrPort // partyline's RTP address, from its "voicemail answered" line
	seq    uint16
	ts     uint32
	sent   []int16 // what was sent after the greeting, decoded as the recorder decodes it
}

func newVMRTP(t *testing.T) *vmRTP {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &vmRTP{conn: conn, port: conn.LocalAddr().(*net.UDPAddr).Port, seq: 4000, ts: 160000}
}

var vmAnsweredRTP = regexp.MustCompile(`msg="voicemail answered" .*\brtp=(\S+)`)

// awaitRecording takes partyline's RTP address from its log once it
// answered, sends it 20 ms packets of silence until partyline's own RTP
// comes back (the greeting starts with the caller's first packet), then
// reads the greeting (0.2 s of silence) and the beep until the first silent
// packet after the beep: partyline sends silence while it records, so from
// then on the recorder listens. It returns when that packet came, or fails
// after limit.
func (p *vmRTP) awaitRecording(t *testing.T, lab *forkLab, limit time.Duration) {
	t.Helper()
	m := vmAnsweredRTP.FindStringSubmatch(lab.srv.await(t, `msg="voicemail answered"`))
	if m == nil {
		t.Fatalf("no rtp= in the voicemail answered line:\n%s", lab.srv.logText())
	}
	server, err := netip.ParseAddrPort(m[1])
	if err != nil {
		t.Fatalf("rtp=%s: %v", m[1], err)
	}
	p.server = server
	deadline := time.Now().Add(limit)
	defer p.conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 2048)
	silence := media.PCMA.Encode(nil, make([]int16, 160))
	for first := true; ; first = false {
		if time.Now().After(deadline) {
			t.Fatalf("no RTP from partyline within %s of sending it ours", limit)
		}
		p.write(vmPTAudio, silence, first) // not part of the message: sent before it
		p.ts += 160
		p.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) // the packet time
		if _, _, err := p.conn.ReadFromUDPAddrPort(buf); err == nil {
			break
		}
	}
	p.conn.SetReadDeadline(deadline)
	loud := 0
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no beep followed by silence from partyline within %s (%d loud packets): %v", limit, loud, err)
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(buf[:n]) != nil || pkt.PayloadType != vmPTAudio {
			continue
		}
		if from := netip.AddrPortFrom(from.Addr().Unmap(), from.Port()); from != p.server {
			t.Fatalf("RTP from %v, partyline answered with %v", from, p.server)
		}
		switch level := meanAbs(media.PCMA.Decode(nil, pkt.Payload)); {
		case level > 1000:
			loud++
		case level < 100 && loud >= 5: // the beep is 15 packets of 20 ms
			return
		}
	}
}

// send sends samples as PCMA in packets of frame samples, one per tick of
// pace: the caller's audio clock, which runs faster than real time where a
// case says so (the recorder follows RTP timestamps, not arrival times).
// Sequence numbers and timestamps continue from what was sent before.
func (p *vmRTP) send(samples []int16, frame int, pace time.Duration) {
	clock := time.NewTicker(pace)
	defer clock.Stop()
	for off := 0; off < len(samples); off += frame {
		payload := media.PCMA.Encode(nil, samples[off:min(off+frame, len(samples))])
		p.sent = media.PCMA.Decode(p.sent, payload)
		p.write(vmPTAudio, payload, off == 0)
		p.ts += uint32(len(payload))
		<-clock.C
	}
}

// pound presses # (RFC 4733 event 11): the end packet, three times, as
// phones send it.
func (p *vmRTP) pound() {
	for k := 0; k < 3; k++ {
		p.write(vmPTEvent, []byte{11, 0x80 | 10, 0x03, 0x20}, false) // end bit, volume 10, 800 samples
	}
}

func (p *vmRTP) write(pt uint8, payload []byte, marker bool) {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, Marker: marker, PayloadType: pt, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: 0x5eed1e55}, Payload: payload}
	raw, _ := pkt.Marshal()
	p.conn.WriteToUDPAddrPort(raw, p.server) // UDP: a lost packet is the recorder's to count
	p.seq++
}

// TestVoicemailInterop runs the acceptance cases of voicemail against the
// built binary, each on its own server, in parallel.
func TestVoicemailInterop(t *testing.T) {
	requirePeer(t, "sipp")

	// A caller plays SIPp's g711a.pcap into voicemail; a member's SIPp phone,
	// subscribed to message-summary, sees the lamp go on when the message
	// arrives, off when the member has heard it (export), and the count
	// drop when it is deleted. The exported WAV equals the pcap's audio
	// sample for sample.
	t.Run("pcap and message waiting", func(t *testing.T) {
		t.Parallel()
		if _, err := os.Stat(vmPcap); err != nil {
			requirePeer(t, vmPcap) // not on the PATH: skips, or fails under CI
		}
		sent, packets := pcapAudio(t, vmPcap)
		lab := newVMLab(t, []string{"alice"}, nil)
		inf := filepath.Join(t.TempDir(), "alice.csv")
		if err := os.WriteFile(inf, []byte("SEQUENTIAL\nalice;"+forkPassword("alice")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		phone := lab.vmSipp(t, "mwi", "vm_subscriber.xml", freePort(t), "-inf", inf)
		phone.await(t, 10*time.Second, "vm-mwi-subscribed")

		// The caller plays the pcap 1.5 s after its ACK (the greeting and
		// the beep last 0.5 s) and hangs up 7.6 s later.
		caller := lab.vmSipp(t, "pcap", "vm_caller_pcap.xml", lab.trunkPort, "-d", "1500")
		expectExit0(t, caller)
		out := lab.awaitVoicemail(t)
		if out.reason != "hangup" || !out.message {
			t.Fatalf("want a message ended by the caller's BYE: %s", out.line)
		}
		v := lab.oneVoicemail(t, forkCaller, "PCMA")
		checkVoicemailRecord(t, lab.history(t, 1)[0], v)
		phone.await(t, 10*time.Second, "vm-mwi-lit")
		// As much audio as the pcap holds (7.08 s), give or take the
		// silence before the first packet and after the last.
		if want := float64(len(sent)) / media.SampleRate; v.DurationS < want-0.05 || v.DurationS > want+0.5 {
			t.Errorf("voicemail of %.3f s, want about %.3f s (%d packets):\n%s", v.DurationS, want, packets, forkJSON(v))
		}
		got := lab.export(t, v.ID, "--as", "alice")
		sameAudio(t, got, sent)

		heard := lab.voicemails(t)
		if len(heard) != 1 || len(heard[0].HeardBy) != 1 || heard[0].HeardBy[0].User != "alice" {
			t.Errorf("export --as alice must mark the message heard by alice:\n%s", forkJSON(heard))
		}
		phone.await(t, 10*time.Second, "vm-mwi-heard")
		ok(t, lab.dir, "voicemail", "delete", v.ID)
		// The phone exits 0 once it has had the fourth NOTIFY (0/0).
		expectExit0(t, phone)
	})

	// baresip, a real softphone, registered as the member alice, calls the
	// number; its flow rings only bob, who has no phone, so voicemail
	// answers at once; baresip sends its WAV (a second of silence, then
	// 3 s of a tone) and hangs up when the file ends.
	t.Run("baresip leaves a message", func(t *testing.T) {
		t.Parallel()
		bin := requirePeer(t, "baresip")
		lab := newVMLab(t, []string{"alice", "bob"}, func(dir string) {
			ok(t, dir, "number", "flow", "set", forkNumber, "--step", "bob:5", "--then", "voicemail")
		})
		wav := filepath.Join(t.TempDir(), "message.wav")
		vmWriteWAV(t, wav, append(make([]int16, media.SampleRate), vmTone(3)...))
		cfg := baresip{user: "alice", password: forkPassword("alice"), outbound: fmt.Sprintf("sip:127.0.0.1:%d", lab.port), audio: wav}.config(t)
		// baresip dials as soon as it is up, while it registers; -t bounds
		// its life and cleanup kills it by PID sooner.
		phone := startForkPeer(t, "baresip", bin, "-f", cfg, "-e", "/dial sip:"+forkNumber+"@127.0.0.1", "-t", "25")
		if l := phone.await(t, 15*time.Second, "Call established", "terminated", "failed"); !strings.Contains(l, "Call established") {
			t.Fatalf("baresip's call was not answered: %s\n%s", l, phone.output())
		}
		out := lab.awaitVoicemail(t)
		if out.reason != "hangup" || !out.message {
			t.Fatalf("want a message ended by baresip's BYE: %s\n%s", out.line, phone.output())
		}
		if l := phone.await(t, 10*time.Second, "200 OK", "Register:"); !strings.Contains(l, "200 OK") {
			t.Errorf("baresip failed to register: %s\n%s", l, phone.output())
		}
		v := lab.oneVoicemail(t, "alice", "PCMU")
		c := lab.history(t, 1)[0]
		checkVoicemailRecord(t, c, v)
		if c.Remote != "alice" || len(c.Skipped) != 1 || c.Skipped[0] != "bob" {
			t.Errorf("want a call from alice that skipped bob (no phone):\n%s", forkJSON(c))
		}
		// The recording starts 0.5 s into the file; baresip hangs up at its
		// end: about 3.5 s, the tone's 3 s at the end.
		if v.DurationS < 2.5 || v.DurationS > 4.5 {
			t.Errorf("voicemail of %.2f s, want about 3.5 s", v.DurationS)
		}
		got := lab.export(t, v.ID)
		tone := trimSilence(got)
		if r := rms(tone); len(tone) < 2*media.SampleRate || r < 2000 {
			t.Fatalf("the message holds %.2f s of sound at RMS %.0f, want about 3 s of the tone (RMS 5657)", float64(len(tone))/media.SampleRate, r)
		}
		// It is the 440 Hz tone: 880 zero crossings a second.
		crossings := 0
		for i := 1; i < len(tone); i++ {
			if (tone[i-1] < 0) != (tone[i] < 0) {
				crossings++
			}
		}
		if hz := float64(crossings) / 2 / (float64(len(tone)) / media.SampleRate); hz < 420 || hz > 460 {
			t.Errorf("the message's tone is %.0f Hz, want 440", hz)
		}
	})

	// partyline ends the call itself: after #, at the maximum length (180 s
	// of audio by RTP timestamps, sent here 100 times faster than real
	// time), after 10 s of silence (by samples, sent faster too) and after
	// 10 s without RTP (real time). SIPp takes the BYE; the test plays the
	// caller's media.
	for _, tc := range []struct {
		name    string
		reason  string
		message bool
		play    func(p *vmRTP)
		seconds float64 // the message's length
		audio   int     // how many of the sent samples the message holds
	}{
		{name: "hash ends the recording", reason: "dtmf", message: true, seconds: 1.5, audio: 12000,
			play: func(p *vmRTP) { p.send(vmTone(1.5), 160, 20*time.Millisecond); p.pound() }},
		{name: "maximum length", reason: "max-length", message: true, seconds: 180, audio: 180 * media.SampleRate,
			play: func(p *vmRTP) { p.send(vmTone(181), 1600, 2*time.Millisecond) }},
		{name: "silence", reason: "silence", message: true, seconds: 2.5, audio: 16000,
			play: func(p *vmRTP) {
				p.send(vmTone(2), 1600, 5*time.Millisecond)
				p.send(make([]int16, 12*media.SampleRate), 1600, 5*time.Millisecond)
			}},
		{name: "no RTP", reason: "no-rtp", message: false, play: func(p *vmRTP) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := newVMLab(t, []string{"alice"}, nil)
			p := newVMRTP(t)
			caller := lab.vmSipp(t, "bye", "vm_caller_hungup.xml", lab.trunkPort, "-key", "rtp_port", strconv.Itoa(p.port))
			p.awaitRecording(t, lab, 10*time.Second)
			recording := time.Now()
			tc.play(p)
			expectExit0(t, caller) // SIPp got partyline's BYE
			waited := time.Since(recording)
			out := lab.awaitVoicemail(t)
			if out.reason != tc.reason || out.message != tc.message {
				t.Fatalf("want reason=%s message=%v: %s", tc.reason, tc.message, out.line)
			}
			c := lab.history(t, 1)[0]
			if !tc.message {
				if vms := lab.voicemails(t); len(vms) != 0 {
					t.Errorf("want no voicemail, got:\n%s", forkJSON(vms))
				}
				if c.Disposition != inbox.Missed || c.VoicemailID != "" || c.AnsweredAt == nil {
					t.Errorf("want a missed call (answered by voicemail, no message):\n%s", forkJSON(c))
				}
				if waited < 9500*time.Millisecond || waited > 14*time.Second {
					t.Errorf("partyline hung up %s after the recording started, want 10 s", waited.Round(time.Millisecond))
				}
				return
			}
			v := lab.oneVoicemail(t, forkCaller, "PCMA")
			checkVoicemailRecord(t, c, v)
			if math.Abs(v.DurationS-tc.seconds) > 0.03 {
				t.Errorf("voicemail of %.3f s, want %.3f s", v.DurationS, tc.seconds)
			}
			got := lab.export(t, v.ID)
			sameAudio(t, got, p.sent[:tc.audio])
		})
	}

	// An offer partyline cannot record (G.729 only) and an INVITE without
	// an offer get 488 from voicemail; the call is missed, nothing stored.
	t.Run("488 without PCMU or PCMA", func(t *testing.T) {
		t.Parallel()
		lab := newVMLab(t, []string{"alice"}, nil)
		expectExit0(t, lab.vmSipp(t, "g729", "vm_caller_g729.xml", lab.trunkPort))
		expectExit0(t, lab.vmSipp(t, "nosdp", "vm_caller_nosdp.xml", lab.trunkPort))
		for _, c := range lab.history(t, 2) {
			if c.Disposition != inbox.Missed || c.VoicemailID != "" || c.AnsweredAt != nil {
				t.Errorf("want a missed call:\n%s", forkJSON(c))
			}
		}
		if vms := lab.voicemails(t); len(vms) != 0 {
			t.Errorf("want no voicemail, got:\n%s", forkJSON(vms))
		}
		if strings.Contains(lab.srv.logText(), "msg=voicemail ") {
			t.Errorf("voicemail recorded a call it refused:\n%s", lab.srv.logText())
		}
	})

	// kill -9 while a message is being recorded: the store opens, passes
	// bbolt's consistency check, holds no part of the message, and keeps
	// everything else; the restarted server takes a new message.
	t.Run("kill -9 while recording", func(t *testing.T) {
		t.Parallel()
		lab := newVMLab(t, []string{"alice", "bob"}, nil)
		p := newVMRTP(t)
		caller := lab.vmSipp(t, "killed", "vm_caller_hungup.xml", lab.trunkPort, "-key", "rtp_port", strconv.Itoa(p.port))
		p.awaitRecording(t, lab, 10*time.Second)
		p.send(vmTone(2), 160, 20*time.Millisecond)
		before := lab.calls(t)
		lab.srv.stop(syscall.SIGKILL)
		caller.cmd.Process.Kill() // it waits for a BYE that will not come
		<-caller.exited

		checkStore(t, filepath.Join(lab.dir, "partyline.db"))

		lab.srv = startServer(t, lab.dir)
		m := regexp.MustCompile(`\bsip=127\.0\.0\.1:(\d+)`).FindStringSubmatch(lab.srv.await(t, `msg="partyline ready"`))
		if m == nil {
			t.Fatalf("no sip= in the ready line:\n%s", lab.srv.logText())
		}
		lab.port, _ = strconv.Atoi(m[1])
		if vms := lab.voicemails(t); len(vms) != 0 {
			t.Fatalf("a voicemail survived the crash:\n%s", forkJSON(vms))
		}
		after := lab.calls(t)
		if len(after) != 1 || after[0].Disposition == inbox.WentToVoicemail || after[0].VoicemailID != "" {
			t.Errorf("want the interrupted call's record, not linked to a voicemail:\n%s", forkJSON(after))
		}
		if len(before) == 1 && len(after) == 1 {
			// Not an acceptance point: reported, not failed.
			t.Logf("the interrupted call's record: %s before the crash, %s after (ended_at %v)",
				before[0].Disposition, after[0].Disposition, after[0].EndedAt)
		}
		users := ok(t, lab.dir, "-o", "json", "user", "list")
		number := ok(t, lab.dir, "-o", "json", "number", "show", forkNumber)
		trunks := ok(t, lab.dir, "-o", "json", "trunk", "list")
		for _, want := range []struct{ in, what string }{{users, `"alice"`}, {users, `"bob"`}, {number, `"alice"`}, {number, `"bob"`}, {trunks, `"carrier"`}} {
			if !strings.Contains(want.in, want.what) {
				t.Errorf("%s is missing after the crash:\n%s", want.what, want.in)
			}
		}

		// The restarted server records a new message whole.
		p = newVMRTP(t)
		caller = lab.vmSipp(t, "after", "vm_caller_hungup.xml", lab.trunkPort, "-key", "rtp_port", strconv.Itoa(p.port))
		p.awaitRecording(t, lab, 10*time.Second)
		p.send(vmTone(1.2), 160, 10*time.Millisecond)
		p.pound()
		expectExit0(t, caller)
		if out := lab.awaitVoicemail(t); out.reason != "dtmf" || !out.message {
			t.Fatalf("want a message ended by #: %s", out.line)
		}
		v := lab.oneVoicemail(t, forkCaller, "PCMA")
		sameAudio(t, lab.export(t, v.ID), p.sent)
	})
}

// checkStore opens the bbolt file of a stopped server read-only, runs
// bbolt's consistency check, and fails on any key in a bucket whose name
// says voicemail (message, audio, index): a crash must leave none of a
// message it was recording.
func checkStore(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("the store does not open after kill -9: %v", err)
	}
	defer db.Close()
	buckets := 0
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !strings.Contains(string(name), "voicemail") {
				return nil
			}
			buckets++
			return b.ForEach(func(k, _ []byte) error {
				t.Errorf("bucket %s holds key %q after the crash", name, k)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if buckets == 0 {
		t.Error("no bucket named voicemail in the store: the check looked at nothing")
	}
}
