// Package media speaks RTP, SDP and audio for partyline's voicemail: it
// answers an SDP offer (Answer), hands out RTP ports (Ports), plays a
// greeting and a beep and records the caller over one UDP socket (Session,
// built on Recorder), and reads and writes WAV files (DecodeWAV, EncodeWAV).
// Audio crosses its API as 8 kHz mono 16-bit samples ([]int16); on the wire
// it is G.711 (PCMU or PCMA), with RFC 4733 telephone-events for DTMF.
//
// It takes plain values (net.PacketConn, netip.AddrPort, []byte,
// time.Duration) and imports nothing of sip, inbox or cmd; the voicemail UAS
// in sip wires it up:
//
//	answer, neg, err := media.Answer(offer, publicIP, conn.Port()) // ErrNoCommonCodec → 488
//	s := media.NewSession(conn, neg)                               // conn from Ports.Listen
//	defer s.Close()
//	if err := s.WaitRTP(ctx, 0); err != nil { /* ErrNoRTP: hang up */ }
//	s.Play(ctx, greeting); s.Play(ctx, media.Beep())
//	rec, _ := s.Record(ctx, media.RecordOptions{})                 // cancel ctx on the caller's BYE
//	if rec.IsMessage() { media.EncodeWAV(&buf, rec.Samples) }     // after any reason but StopHangup, send BYE
//
// Invariants:
//   - A Session sends RTP only to the source of the caller's first RTP
//     packet, and nothing before that packet arrived: an SDP address is
//     never sent to, and packets from any other source are dropped.
//   - A recording follows RTP timestamps, not packet counts: a sample's
//     place is its timestamp, so a recording never contains audio from after
//     a gap without the gap's silence before it, and 20 ms and 30 ms packets
//     mix freely.
//   - Audio is final once it is more than RecordOptions.Jitter older than the
//     newest audio; final audio never changes, and silence detection and
//     length limits look only at final audio.
//   - A recording is bounded: never longer than RecordOptions.MaxLength
//     (memory: 16 kB per second), whatever timestamps arrive.
//   - A new SSRC, an RTP clock restart and an RFC 3550 sequence restart
//     continue the recording at its current end; late packets of an ended
//     SSRC are dropped, never written over the audio that followed.
//   - A recording is a message (Recording.IsMessage) when it holds at least
//     one second of audio up to its last sound: trailing silence does not
//     count, leading silence does.
//   - A DTMF event counts once, however many of its packets arrive.
//   - Nothing the network or a file sends makes the package panic: RTP,
//     SDP and WAV input are fuzzed.
//   - Every goroutine has an owner: a Session's reader ends before Close
//     returns; Play and Record run in their caller's goroutine and return
//     when their context ends.
package media
