package sip

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/media"
)

// TestVoicemailRecordsAndLightsLamps: nobody answers; voicemail answers
// with SDP, plays the greeting and beep, records the caller's audio until
// their BYE, stores it whole with the call record, and sends MWI.
func TestVoicemailRecordsAndLightsLamps(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.RingTime = 200 * time.Millisecond; s.RTPPorts = "40000-40099" })
	numberWith(t, e, "alice")
	alice := newDevice(t, e, "alice", "udp") // rings, never answers
	// A 0.2 s greeting keeps the test short.
	if err := e.inbox.SetGreeting(testNumber, make([]byte, 3200)); err != nil {
		t.Fatal(err)
	}
	car := newCarrier(t, e)

	rtpConn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	rtpPort := rtpConn.LocalAddr().(*net.UDPAddr).Port
	offer := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n", rtpPort)
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "+15550009999", Host: "carrier.example"}, Params: sip.NewParams()}
	from.Params.Add("tag", "vm1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := car.dialog.Invite(ctx, sip.Uri{Scheme: "sip", User: testNumber, Host: "127.0.0.1", Port: int(e.addr.Port())},
		[]byte(offer), &from, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	recv(t, alice.invites, "alice's INVITE")
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("voicemail did not answer: %v", err)
	}
	if err := sess.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`m=audio (\d+) RTP/AVP 0`).FindSubmatch(sess.InviteResponse.Body())
	if m == nil {
		t.Fatalf("answer: %s", sess.InviteResponse.Body())
	}
	vmPort, _ := strconv.Atoi(string(m[1]))
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: vmPort}

	// The phone's first RTP (silence, as phones send from the answer) starts
	// the greeting (0.2 s) and beep (0.3 s): 25 packets of 20 ms; then the
	// recording starts.
	first := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 999, Timestamp: 5000 - 160, SSRC: 42, Marker: true}, Payload: media.PCMU.Encode(nil, make([]int16, 160))}
	raw, _ := first.Marshal()
	rtpConn.WriteTo(raw, dst)
	buf := make([]byte, 1500)
	for got := 0; got < 25; got++ {
		rtpConn.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, _, err := rtpConn.ReadFrom(buf); err != nil {
			t.Fatalf("after %d packets of greeting and beep: %v", got, err)
		}
	}
	sent := sendToneThenHash(rtpConn, dst)
	select {
	case <-sess.Context().Done(): // partyline's BYE ended the dialog
	case <-time.After(10 * time.Second):
		t.Fatal("partyline did not hang up after #")
	}
	n := recvWithin(t, alice.notifies, "alice's message-waiting NOTIFY", 10*time.Second)
	if b := string(n.Body()); !regexp.MustCompile(`Voice-Message: 1/0`).MatchString(b) {
		t.Fatalf("NOTIFY: %s", b)
	}
	vms, _ := e.inbox.Voicemails([]string{testNumber})
	if len(vms) != 1 || vms[0].From != "+15550009999" || vms[0].Codec != "PCMU" || vms[0].DurationS < 1.9 || vms[0].DurationS > 2.5 {
		t.Fatalf("voicemail: %+v", vms)
	}
	pcm, _ := e.inbox.VoicemailAudio(vms[0].ID)
	got := make([]int16, len(pcm)/2)
	for i := range got {
		got[i] = int16(binary.LittleEndian.Uint16(pcm[2*i:]))
	}
	containsAudio(t, got, sent)
	c := lastCall(t, e, func(c inbox.Call) bool { return c.Disposition == inbox.WentToVoicemail })
	if c.VoicemailID != vms[0].ID || c.EndedAt == nil || outcomes(c)["alice"] != inbox.BranchNoAnswer {
		t.Fatalf("call record: %+v", c)
	}
}

// offerTo is an SDP offer of PCMU and telephone-event asking for RTP at
// ip:port.
func offerTo(ip string, port int) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n", ip, ip, port))
}

// listenRTP opens a UDP socket on ip (127.0.0.2 is loopback too on Linux).
func listenRTP(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// queuedRTP reads what waits on c and returns how many datagrams and bytes
// it was. Loopback delivers within sendto, so whatever was sent to c is
// there; the short deadline only ends the read of an empty queue.
func queuedRTP(c *net.UDPConn) (packets, bytes int) {
	buf := make([]byte, 2048)
	for ; packets < 100000; packets++ {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		bytes += n
	}
	return packets, bytes
}

// vmInvite sends the carrier's INVITE with offer to the test number; it
// returns the dialog and the final response's error (nil when answered).
func vmInvite(t *testing.T, e *env, car *carrier, offer []byte) (*sipgo.DialogClientSession, error) {
	t.Helper()
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "+15550009999", Host: "carrier.example"}, Params: sip.NewParams()}
	from.Params.Add("tag", fmt.Sprint(time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := car.dialog.Invite(ctx, sip.Uri{Scheme: "sip", User: testNumber, Host: "127.0.0.1", Port: int(e.addr.Port())},
		offer, &from, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	return sess, answered(t, sess, sipgo.AnswerOptions{})
}

// answered waits for sess's final response and ACKs a 2xx.
func answered(t *testing.T, sess *sipgo.DialogClientSession, opts sipgo.AnswerOptions) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sess.WaitAnswer(ctx, opts); err != nil {
		return err
	}
	return sess.Ack(ctx)
}

// vmPortOf is the RTP port of voicemail's answer.
func vmPortOf(t *testing.T, sess *sipgo.DialogClientSession) int {
	t.Helper()
	m := regexp.MustCompile(`m=audio (\d+) RTP/AVP 0`).FindSubmatch(sess.InviteResponse.Body())
	if m == nil {
		t.Fatalf("answer: %s", sess.InviteResponse.Body())
	}
	port, _ := strconv.Atoi(string(m[1]))
	return port
}

// statusOfErr is the status of a failed INVITE's final response, 0 when the
// error is not one.
func statusOfErr(err error) int {
	var res *sipgo.ErrDialogResponse
	if errors.As(err, &res) {
		return res.Res.StatusCode
	}
	var v sipgo.ErrDialogResponse
	if errors.As(err, &v) {
		return v.Res.StatusCode
	}
	return 0
}

// hangUpAll ends the answered calls with BYE.
func hangUpAll(t *testing.T, calls ...*sipgo.DialogClientSession) {
	t.Helper()
	for _, c := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.Bye(ctx)
		cancel()
	}
}

// TestVoicemailNoRTPToSDPAddress: an INVITE whose SDP names a third party
// (a socket on 127.0.0.2) and that never sends RTP is answered by
// voicemail, which sends that address nothing, not even the greeting, and
// hangs up after the no-RTP timeout (issue 14, finding 6: one INVITE made
// partyline send 133 KB to the SDP's address).
func TestVoicemailNoRTPToSDPAddress(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.RTPPorts = "40100-40199"; s.Record.NoRTPTimeout = 500 * time.Millisecond })
	numberWith(t, e, "alice") // no phone: voicemail answers at once
	car := newCarrier(t, e)
	victim := listenRTP(t, "127.0.0.2")
	sess, err := vmInvite(t, e, car, offerTo("127.0.0.2", victim.LocalAddr().(*net.UDPAddr).Port))
	if err != nil {
		t.Fatalf("voicemail did not answer: %v", err)
	}
	select {
	case <-sess.Context().Done(): // partyline's BYE: no RTP came
	case <-time.After(10 * time.Second):
		t.Fatal("voicemail did not hang up on a caller that sends no RTP")
	}
	if n, b := queuedRTP(victim); n != 0 {
		t.Fatalf("voicemail sent %d packets (%d bytes) to the address the SDP named", n, b)
	}
	c := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil })
	if c.Disposition != inbox.Missed || c.VoicemailID != "" {
		t.Fatalf("call record: %+v", c)
	}
	if !strings.Contains(e.log.String(), "reason=no-rtp") {
		t.Errorf("no voicemail line with reason=no-rtp:\n%s", e.log)
	}
	e.noPanics()
}

// TestVoicemailGreetingToRTPSource: the caller's SDP names a third party,
// but its RTP comes from its own socket: the greeting goes to that socket
// once its first packet arrived, and never to the SDP's address.
func TestVoicemailGreetingToRTPSource(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.RTPPorts = "40200-40299" })
	numberWith(t, e, "alice")
	car := newCarrier(t, e)
	victim := listenRTP(t, "127.0.0.2")
	caller := listenRTP(t, "127.0.0.1")
	sess, err := vmInvite(t, e, car, offerTo("127.0.0.2", victim.LocalAddr().(*net.UDPAddr).Port))
	if err != nil {
		t.Fatalf("voicemail did not answer: %v", err)
	}
	vm := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: vmPortOf(t, sess)}
	first := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 1, Timestamp: 160, SSRC: 7, Marker: true},
		Payload: media.PCMU.Encode(nil, make([]int16, 160))}
	raw, _ := first.Marshal()
	if _, err := caller.WriteTo(raw, vm); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for got := 0; got < 10; got++ {
		caller.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, from, err := caller.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("after %d packets of greeting: %v", got, err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil || p.PayloadType != 0 || from.Port != vm.Port {
			t.Fatalf("packet %d from %v: %v %v", got, from, p.Header, err)
		}
	}
	hangUpAll(t, sess)
	if n, b := queuedRTP(victim); n != 0 {
		t.Fatalf("voicemail sent %d packets (%d bytes) to the address the SDP named", n, b)
	}
	e.noPanics()
}

// TestVoicemailCaps: voicemail calls at once are capped per number (for a
// trunk's callers too) and per source address (a trunk's calls exempt);
// over a cap the INVITE gets 486, once logged as a security event; a call
// that ends frees its place.
func TestVoicemailCaps(t *testing.T) {
	t.Run("per number", func(t *testing.T) {
		e := newEnv(t, func(s *Server) { s.RTPPorts = "40300-40399"; s.VoicemailPerNumber = 2 })
		numberWith(t, e, "alice")
		car := newCarrier(t, e)
		var calls []*sipgo.DialogClientSession
		defer func() { hangUpAll(t, calls...) }()
		for i := range 2 {
			sess, err := vmInvite(t, e, car, offerTo("127.0.0.1", 9))
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			calls = append(calls, sess)
		}
		for i := range 3 {
			if _, err := vmInvite(t, e, car, offerTo("127.0.0.1", 9)); statusOfErr(err) != 486 {
				t.Fatalf("call over the cap (%d): want 486, got %v", i, err)
			}
		}
		if n := strings.Count(e.log.String(), "event=voicemail_cap"); n != 1 {
			t.Errorf("%d voicemail_cap lines for three calls over the cap within 10 s, want 1:\n%s", n, e.log)
		}
		// One call ends: its place is free again once its recording ended.
		hangUpAll(t, calls[0])
		calls = calls[1:]
		awaitVoicemailCount(t, e, testNumber, 1)
		sess, err := vmInvite(t, e, car, offerTo("127.0.0.1", 9))
		if err != nil {
			t.Fatalf("a call after one ended: %v", err)
		}
		calls = append(calls, sess)
		e.noPanics()
	})
	t.Run("per source", func(t *testing.T) {
		e := newEnv(t, func(s *Server) { s.RTPPorts = "40400-40499"; s.VoicemailPerSource = 2 })
		numberWith(t, e, "alice")
		car := newCarrier(t, e)
		var calls []*sipgo.DialogClientSession
		defer func() { hangUpAll(t, calls...) }()
		// alice calls her own number from three phones on one address.
		for i := range 3 {
			p := newMemberPhone(t, e, "alice")
			from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: testRealm}, Params: sip.NewParams()}
			from.Params.Add("tag", fmt.Sprintf("vm-src-%d", i))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			sess, err := p.dialog.Invite(ctx, sip.Uri{Scheme: "sip", User: testNumber, Host: "127.0.0.1", Port: int(e.addr.Port())},
				offerTo("127.0.0.1", 9), &from, sip.NewHeader("Content-Type", "application/sdp"))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			err = answered(t, sess, sipgo.AnswerOptions{Username: "alice", Password: "secret-alice"})
			switch {
			case i < 2 && err != nil:
				t.Fatalf("member call %d: %v", i, err)
			case i < 2:
				calls = append(calls, sess)
			case statusOfErr(err) != 486:
				t.Fatalf("the third call from one address: want 486, got %v", err)
			}
		}
		// The carrier is on the same address, but its callers are many
		// people: they count towards the number only.
		sess, err := vmInvite(t, e, car, offerTo("127.0.0.1", 9))
		if err != nil {
			t.Fatalf("a trunk call: %v", err)
		}
		calls = append(calls, sess)
		if !strings.Contains(e.log.String(), "event=voicemail_cap src=127.0.0.1 limit=source") {
			t.Errorf("no voicemail_cap line for the source:\n%s", e.log)
		}
		e.noPanics()
	})
}

// awaitVoicemailCount waits until number has n voicemail calls counted.
// A recording's end cannot be awaited from outside, so it polls, bounded.
func awaitVoicemailCount(t *testing.T, e *env, number string, n int) {
	t.Helper()
	for range 1000 {
		e.srv.vm.mu.Lock()
		got := e.srv.vm.byNumber[number]
		e.srv.vm.mu.Unlock()
		if got == n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("voicemail calls to %s never came down to %d", number, n)
}

// sendToneThenHash sends dst 2 s of a 440 Hz tone as a phone would, then
// '#', and returns the samples sent (as the far end decodes them).
func sendToneThenHash(rtpConn net.PacketConn, dst net.Addr) []int16 {
	// 2 s of a 440 Hz tone, PCMU, 20 ms packets sent in real time as a
	// phone does (the ticker is the audio clock, not a wait for an event).
	var sent []int16
	clock := time.NewTicker(20 * time.Millisecond)
	defer clock.Stop()
	for i := 0; i < 100; i++ {
		<-clock.C
		frame := make([]int16, 160)
		for j := range frame {
			frame[j] = int16(8000 * math.Sin(2*math.Pi*440*float64(i*160+j)/8000))
		}
		payload := media.PCMU.Encode(nil, frame)
		sent = append(sent, media.PCMU.Decode(nil, payload)...)
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(1000 + i), Timestamp: uint32(5000 + 160*i), SSRC: 42, Marker: i == 0}, Payload: payload}
		raw, _ := p.Marshal()
		rtpConn.WriteTo(raw, dst)
	}
	// '#' (RFC 4733 event 11, end bit, sent three times as phones do) ends
	// the recording; partyline hangs up, stores the message whole and
	// lights the lamp. The event follows the audio in sequence, so every
	// sample before it is in the message.
	for k := 0; k < 3; k++ {
		ev := []byte{11, 0x80 | 10, 0x03, 0x20} // event #, end, volume 10, duration 800
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: uint16(1100 + k), Timestamp: uint32(5000 + 160*100), SSRC: 42}, Payload: ev}
		raw, _ := p.Marshal()
		rtpConn.WriteTo(raw, dst)
	}
	return sent
}

// containsAudio: got holds sent, sample for sample, after leading silence.
func containsAudio(t *testing.T, got, sent []int16) {
	t.Helper()
	start := 0
	for start < len(got) && got[start] != sent[0] {
		start++
	}
	if start+len(sent) > len(got) {
		t.Fatalf("the recording (%d samples) does not contain the sent audio (%d)", len(got), len(sent))
	}
	for i := range sent {
		if got[start+i] != sent[i] {
			t.Fatalf("sample %d differs: %d != %d", i, got[start+i], sent[i])
		}
	}
}
