package sip

// The voicemail user agent: when a number's call flow ends unanswered,
// partyline answers the call itself, plays the number's greeting and a
// beep, records, stores the message whole in the inbox, and lights the
// members' message lamps.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/media"
)

// VoicemailStore is what the voicemail UAS needs from the inbox.
// inbox.Store satisfies it.
type VoicemailStore interface {
	Voicemails
	SaveVoicemail(v *inbox.Voicemail, pcm []byte, call *inbox.Call) error
	Greeting(number string) ([]byte, error)
}

// vmCall is one call voicemail answered: its dialog, until the recording
// ends.
type vmCall struct {
	f        *fork
	localTag string
	answer   []byte // our SDP, for re-INVITEs
	hangup   context.CancelFunc
	mu       sync.Mutex
	byeSent  bool
}

type vmCalls struct {
	mu       sync.Mutex
	m        map[string]*vmCall // by Call-ID
	bySource map[netip.Addr]int // calls in progress per source (Limits)
	byNumber map[string]int     // calls in progress per number (Limits)
	logs     limitLogs          // rate-limits voicemail's security lines
}

func (v *vmCalls) get(callID string) *vmCall {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[callID]
}

func (v *vmCalls) put(callID string, c *vmCall) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c == nil {
		delete(v.m, callID)
		return
	}
	v.m[callID] = c
}

// voicemail answers f's call with the voicemail UAS. It returns once the
// INVITE is answered; recording goes on in a goroutine the server owns.
func (s *Server) voicemail(f *fork) {
	req := f.req
	number := f.rec.Number
	src, ok := s.vmAdmitCall(f)
	if !ok {
		return
	}
	counted := true // until the recording goroutine takes the count over
	defer func() {
		if counted {
			s.vmRelease(src, number)
		}
	}()
	host, _ := s.advertised(req)
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ip = netip.MustParseAddr("127.0.0.1")
	}
	conn, err := s.rtpPorts.Listen(ip)
	if err != nil {
		s.Log.Error("voicemail: no RTP port", "call_id", req.CallID().Value(), "error", err)
		s.respond(f.tx, req, 503, "Service Unavailable")
		f.closeRecord(inbox.Missed, "")
		return
	}
	answer, neg, err := media.Answer(req.Body(), ip, conn.Port())
	if err != nil {
		conn.Close()
		s.respond(f.tx, req, 488, "Not Acceptable Here")
		f.closeRecord(inbox.Missed, "")
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", answer)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	h, p := s.advertised(req)
	res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:voicemail@%s>", hostPort(h, uint16(p)))))
	ctx, hangup := context.WithCancel(context.Background())
	vc := &vmCall{f: f, localTag: res.To().Params.GetOr("tag", ""), answer: answer, hangup: hangup}
	s.vm.put(req.CallID().Value(), vc)
	if err := f.tx.Respond(res); err != nil {
		hangup()
		conn.Close()
		s.vm.put(req.CallID().Value(), nil)
		f.closeRecord(inbox.Missed, "")
		return
	}
	f.mu.Lock()
	now := s.Now()
	f.rec.AnsweredAt = &now
	f.rec.Disposition = inbox.WentToVoicemail // recording; missed if no message comes of it
	f.mu.Unlock()
	f.save()
	// Where we take the caller's RTP, and where their SDP asked for ours
	// (which we never send to by itself: see record).
	sdpAddr := "none"
	if neg.Remote.IsValid() {
		sdpAddr = neg.Remote.String()
	}
	s.Log.Info("voicemail answered", "call_id", req.CallID().Value(), "number", number,
		"rtp", netip.AddrPortFrom(ip, uint16(conn.Port())).String(), "sdp", sdpAddr)
	if s.goTracked(func() {
		defer s.vmRelease(src, number)
		defer hangup()
		defer conn.Close()
		defer s.vm.put(req.CallID().Value(), nil)
		s.record(ctx, vc, media.NewSession(conn, neg), neg)
	}) {
		counted = false
	} else {
		// Shutting down: no recording can start now.
		hangup()
		conn.Close()
		s.vm.put(req.CallID().Value(), nil)
		s.hangUp(vc)
		f.closeRecord(inbox.Missed, "")
	}
}

// vmUnsupported lists the option tags in the INVITE's Require that
// voicemail does not implement ("" when none).
func vmUnsupported(req *sip.Request) string {
	var bad []string
	for _, h := range headersNamed(req, "Require") {
		for _, tag := range strings.Split(h.Value(), ",") {
			if tag = strings.TrimSpace(tag); tag != "" && !strings.EqualFold(tag, "100rel") {
				bad = append(bad, tag)
			}
		}
	}
	return strings.Join(bad, ", ")
}

// vmAdmitCall takes a place for f's call under the voicemail caps (per
// source, per number) and returns the source it counts under (none for a
// carrier's call: those count towards the number only); false once it has
// answered 486.
func (s *Server) vmAdmitCall(f *fork) (netip.Addr, bool) {
	if bad := vmUnsupported(f.req); bad != "" {
		// Voicemail is the UAS now: an extension the caller requires and
		// we lack is 420 (RFC 3261 §8.2.2.3). 100rel needs nothing of us:
		// we answer 200 with no provisional response but 100.
		res := newResponse(f.req, 420, "Bad Extension")
		res.AppendHeader(sip.NewHeader("Unsupported", bad))
		f.tx.Respond(res)
		f.closeRecord(inbox.Missed, "")
		return netip.Addr{}, false
	}
	src := f.src.Addr().Unmap()
	if _, trunk := s.dir.TrustedTrunk(f.src); trunk {
		src = netip.Addr{}
	}
	ok, limit := s.vmAdmit(src, f.rec.Number)
	if ok {
		return src, true
	}
	// 486 Busy Here, not 503: the cap is this caller's or this number's,
	// and 486 ends this call only (the carrier plays busy). A 503 says the
	// whole server is unavailable: carriers and proxies fail over or stop
	// sending us calls for a while (RFC 3261 §21.5.4, RFC 3263 §4.3), so
	// one caller over its cap would cost everyone theirs. PBX per-peer call
	// limits answer busy as well.
	s.securityEvent(&s.vm.logs, "voicemail_cap", f.src.Addr().Unmap().String(), "limit", limit,
		"number", f.rec.Number, "call_id", f.req.CallID().Value())
	s.respond(f.tx, f.req, 486, "Busy Here")
	f.closeRecord(inbox.Missed, "")
	return netip.Addr{}, false
}

// record plays the greeting and the beep, records, and stores the message.
func (s *Server) record(ctx context.Context, vc *vmCall, sess *media.Session, neg media.Negotiated) {
	defer sess.Close()
	f := vc.f
	go func() {
		select {
		case <-ctx.Done():
		case <-s.stopping:
			vc.hangup()
		}
	}()
	greeting := media.DefaultGreeting()
	if pcm, err := s.vmStore.Greeting(f.rec.Number); err == nil && len(pcm) >= 2 {
		greeting = pcmSamples(pcm)
	}
	started := s.Now()
	rec := media.Recording{Reason: media.StopHangup} // hung up before the recording
	// The greeting starts with the caller's first RTP packet. Before it we
	// know no address the caller has shown to be theirs: the SDP's may be
	// anyone's, and the session sends only where the caller's RTP comes
	// from (symmetric RTP). Phones send RTP from the moment they are
	// answered (voice, comfort noise or silence), so the caller still hears
	// the greeting from its start. No RTP within the no-RTP timeout (its
	// default when the recording's is off) ends the call as a recording
	// without RTP would.
	switch err := sess.WaitRTP(ctx, s.Record.NoRTPTimeout); {
	case err == nil:
		if err := sess.Play(ctx, greeting); err == nil {
			sess.Play(ctx, media.Beep())
		}
		if ctx.Err() == nil {
			rec, err = sess.Record(ctx, s.Record)
			if err != nil && ctx.Err() == nil {
				s.Log.Warn("voicemail: recording failed", "call_id", f.rec.CallID, "error", err)
			}
		}
	case errors.Is(err, media.ErrNoRTP):
		rec.Reason = media.StopNoRTP
	}
	switch rec.Reason {
	case media.StopDTMF, media.StopMaxLength, media.StopSilence, media.StopNoRTP:
		s.hangUp(vc) // we end the call
	}
	logDone := func(stored bool) {
		s.Log.Info("voicemail", "call_id", f.rec.CallID, "number", f.rec.Number, "reason", rec.Reason.String(),
			"seconds", rec.Duration().Seconds(), "message", stored)
	}
	if !rec.IsMessage() {
		f.closeRecord(inbox.Missed, "")
		logDone(false)
		return
	}
	v := &inbox.Voicemail{
		ID: s.calls.NewID(), Number: f.rec.Number, From: f.rec.Remote, ReceivedAt: started.UTC(),
		DurationS: rec.Duration().Seconds(), Codec: neg.Codec.Encoding.String(), CallID: f.rec.ID,
	}
	pcm := make([]byte, 2*len(rec.Samples))
	for i, x := range rec.Samples {
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(x))
	}
	// The message and the record ending in it go in one transaction. The
	// record is final in memory first; then the writes in flight (which may
	// hold an older copy) end; any later write copies the final state.
	call := f.endRecord(inbox.WentToVoicemail, v.ID)
	f.waitSaved()
	if err := s.vmStore.SaveVoicemail(v, pcm, &call); err != nil {
		s.Log.Error("voicemail: storing", "call_id", f.rec.CallID, "error", err)
		f.closeRecord(inbox.Missed, "")
		logDone(false)
		return
	}
	logDone(true) // only once it is stored
	s.NotifyMWI(f.rec.Number)
}

// pcmSamples reads 16-bit little-endian PCM.
func pcmSamples(pcm []byte) []int16 {
	out := make([]int16, len(pcm)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(pcm[2*i:]))
	}
	return out
}

// endRecord closes the record in memory as disposition (with the voicemail
// link) and returns a copy to store.
func (f *fork) endRecord(disposition, voicemailID string) inbox.Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.s.Now()
	f.rec.EndedAt = &now
	f.rec.Disposition = disposition
	f.rec.VoicemailID = voicemailID
	if f.rec.AnsweredAt != nil {
		f.rec.DurationS = int(now.Sub(*f.rec.AnsweredAt).Round(time.Second) / time.Second)
	}
	c := *f.rec
	c.Branches = append([]inbox.Branch(nil), f.rec.Branches...)
	return c
}

// closeRecord ends the record with disposition and saves it.
func (f *fork) closeRecord(disposition, voicemailID string) {
	f.endRecord(disposition, voicemailID)
	f.save()
}

// hangUp sends our BYE to the caller (we are the UAS of this dialog).
func (s *Server) hangUp(vc *vmCall) {
	vc.mu.Lock()
	if vc.byeSent {
		vc.mu.Unlock()
		return
	}
	vc.byeSent = true
	vc.mu.Unlock()
	inv := vc.f.req
	target := inv.Recipient
	if c := inv.Contact(); c != nil {
		target = c.Address
	}
	bye := sip.NewRequest(sip.BYE, target)
	for _, h := range inv.GetHeaders("Record-Route") {
		rr := h.(*sip.RecordRouteHeader)
		bye.AppendHeader(&sip.RouteHeader{Address: rr.Address})
	}
	from := &sip.FromHeader{DisplayName: inv.To().DisplayName, Address: inv.To().Address, Params: sip.NewParams()}
	from.Params.Add("tag", vc.localTag)
	to := &sip.ToHeader{DisplayName: inv.From().DisplayName, Address: inv.From().Address, Params: inv.From().Params.Clone()}
	bye.AppendHeader(from)
	bye.AppendHeader(to)
	bye.AppendHeader(sip.HeaderClone(inv.CallID()))
	bye.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.BYE})
	mf := sip.MaxForwardsHeader(70)
	bye.AppendHeader(&mf)
	bye.AppendHeader(sip.NewHeader("Content-Length", "0"))
	transport := strings.ToUpper(inv.Transport())
	host, port := s.advertised(inv)
	s.viaTo(bye, host, port, transport, vc.f.src.String()) // where the caller really is
	s.sendFinal(bye)
}

// vmInDialog answers requests inside a voicemail dialog: BYE ends the
// recording, ACK is absorbed, a re-INVITE keeps our answer.
func (s *Server) vmInDialog(vc *vmCall, req *sip.Request, tx sip.ServerTransaction) {
	switch req.Method {
	case sip.ACK:
	case sip.BYE:
		s.respond(tx, req, 200, "OK")
		vc.hangup()
	case sip.INVITE:
		res := sip.NewResponseFromRequest(req, 200, "OK", vc.answer)
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		tx.Respond(res)
	case sip.UPDATE, sip.INFO, sip.OPTIONS:
		s.respond(tx, req, 200, "OK")
	default:
		s.respond(tx, req, 405, "Method Not Allowed")
	}
}
