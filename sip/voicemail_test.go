package sip

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
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

	// Greeting (0.2 s) and beep (0.3 s) arrive as 25 packets of 20 ms; then
	// the recording starts.
	buf := make([]byte, 1500)
	for got := 0; got < 25; got++ {
		rtpConn.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, _, err := rtpConn.ReadFrom(buf); err != nil {
			t.Fatalf("after %d packets of greeting and beep: %v", got, err)
		}
	}
	// 2 s of a 440 Hz tone, PCMU, 20 ms packets sent in real time as a
	// phone does (the ticker is the audio clock, not a wait for an event).
	var sent []int16
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: vmPort}
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
	// Sample for sample, allowing leading/trailing silence.
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
	c := lastCall(t, e, func(c inbox.Call) bool { return c.Disposition == inbox.WentToVoicemail })
	if c.VoicemailID != vms[0].ID || c.EndedAt == nil || outcomes(c)["alice"] != inbox.BranchNoAnswer {
		t.Fatalf("call record: %+v", c)
	}
}
