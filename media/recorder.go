package media

import (
	"time"

	"github.com/pion/rtp"
)

// StopReason says why a recording ended. The zero value means it has not.
type StopReason uint8

// Why a recording ends. Only StopHangup comes from the caller's side of the
// signalling; after every other reason partyline sends BYE.
const (
	StopHangup    StopReason = iota + 1 // the context ended: the caller's BYE, or shutdown
	StopDTMF                            // the caller pressed # (RFC 4733 event 11)
	StopMaxLength                       // RecordOptions.MaxLength of audio
	StopSilence                         // RecordOptions.SilenceTimeout of audio below SilenceLevel
	StopNoRTP                           // no RTP for RecordOptions.NoRTPTimeout (Session only)
)

// String returns a fixed name for logs.
func (r StopReason) String() string {
	switch r {
	case 0:
		return "recording"
	case StopHangup:
		return "hangup"
	case StopDTMF:
		return "dtmf"
	case StopMaxLength:
		return "max-length"
	case StopSilence:
		return "silence"
	case StopNoRTP:
		return "no-rtp"
	}
	return "unknown"
}

// MinMessage is the voiced audio a recording needs to be a message (see
// Recording.IsMessage).
const MinMessage = time.Second

// Defaults of RecordOptions.
const (
	DefaultMaxLength      = 180 * time.Second
	DefaultSilenceTimeout = 10 * time.Second
	DefaultSilenceLevel   = 300
	DefaultNoRTPTimeout   = 10 * time.Second
	DefaultJitter         = 80 * time.Millisecond
)

// RecordOptions bound a recording. The zero value means every default.
type RecordOptions struct {
	// MaxLength ends the recording (StopMaxLength) when this much audio has
	// been recorded, by RTP timestamps. Default 180 s.
	MaxLength time.Duration
	// SilenceTimeout ends the recording (StopSilence) after this much audio
	// (by samples, gaps included) below SilenceLevel. Default 10 s; negative
	// disables it.
	SilenceTimeout time.Duration
	// SilenceLevel is the mean absolute amplitude below which a 20 ms block
	// counts as silent. Default 300 (about -40 dBFS).
	SilenceLevel int
	// NoRTPTimeout ends a Session's recording (StopNoRTP) when no RTP
	// arrived for this long (counted from the start of the recording or the
	// last packet). Default 10 s; negative disables it.
	NoRTPTimeout time.Duration
	// Jitter is how late a packet may be and still take its place: audio
	// older than the newest by more than this is final. Default 80 ms.
	Jitter time.Duration
}

func (o RecordOptions) withDefaults() RecordOptions {
	if o.MaxLength <= 0 {
		o.MaxLength = DefaultMaxLength
	}
	if o.SilenceTimeout == 0 {
		o.SilenceTimeout = DefaultSilenceTimeout
	}
	if o.SilenceLevel <= 0 {
		o.SilenceLevel = DefaultSilenceLevel
	}
	if o.NoRTPTimeout == 0 {
		o.NoRTPTimeout = DefaultNoRTPTimeout
	}
	if o.Jitter <= 0 {
		o.Jitter = DefaultJitter
	}
	return o
}

// Recording is the result of a recording.
type Recording struct {
	// Samples is the audio, 8 kHz mono, with silence where packets were
	// lost. After StopSilence the trailing silence is cut to 500 ms.
	Samples []int16
	// Reason says why the recording ended.
	Reason StopReason
	// Voiced is the length of the audio up to the end of its last 20 ms
	// block above SilenceLevel: leading silence counts, trailing does not.
	Voiced time.Duration
	// Digits holds the RFC 4733 keys pressed (at most 32), # included.
	Digits string
	// Stats counts the packets.
	Stats Stats
}

// Duration returns the length of Samples.
func (r Recording) Duration() time.Duration { return samplesDuration(len(r.Samples)) }

// IsMessage reports whether the recording is a voicemail message: at least
// MinMessage of audio up to its last sound (Voiced). A caller who hangs up
// right after the beep, or leaves only line noise, leaves no message.
func (r Recording) IsMessage() bool { return r.Voiced >= MinMessage }

// Stats counts what a recorder saw.
type Stats struct {
	Packets    int // RTP packets taken (audio and telephone-event), duplicates excluded
	Lost       int // packets the sequence numbers promised that never came
	Late       int // packets that came after their audio was final (dropped)
	Duplicates int // packets seen twice (dropped)
	Ignored    int // malformed packets, other payload types, sequence jumps on probation
	Streams    int // SSRCs and restarts of one SSRC
}

const (
	blockSamples = SampleRate / 50 // 20 ms: the unit of silence detection
	silenceTail  = SampleRate / 2  // trailing silence kept after StopSilence
	maxDropout   = 3000            // RFC 3550 A.1
	maxMisorder  = 100             // RFC 3550 A.1
	seenWindow   = 128             // duplicate detection, > maxMisorder
	maxRetired   = 4               // ended SSRCs whose stragglers are dropped
	maxDigits    = 32
	recentEvents = 4 // DTMF event timestamps remembered
)

// Recorder turns the RTP packets of a call into 8 kHz samples, following
// RTP timestamps: each packet's audio goes where its timestamp says, so 20 ms
// and 30 ms packets mix, reordered packets fall into place, and a lost
// packet leaves silence of its length. Audio more than Jitter older than the
// newest is final; packets arriving after that are dropped (Late). Sequence
// numbers find duplicates, losses and restarts (RFC 3550 A.1). A new SSRC,
// or a timestamp jump that cannot be real time, starts a new stream that
// continues at the current end of the recording; stragglers of ended SSRCs
// are dropped.
//
// A Recorder is not safe for concurrent use; Session serialises it.
type Recorder struct {
	enc        Encoding
	pt, dtmfPT uint8
	opts       RecordOptions

	maxSamples, jitter, silenceSamples, maxJump int
	blockLevel                                  int

	buf       sampleBuf // buf[:committed] is final; holes after it are zeros
	committed int
	reason    StopReason
	done      bool
	result    Recording

	pkt     rtp.Packet // reused by Write
	st      *stream
	nextID  int
	retired [maxRetired]retiredStream
	nRet    int

	analyzed, silentRun, voicedEnd int

	events  [recentEvents]eventKey
	nEvents int
	digits  []byte

	stats Stats
}

// stream is one SSRC's sequence and timestamp state.
type stream struct {
	id       int
	ssrc     uint32
	extMax   int64 // extended highest sequence number
	baseExt  int64 // extended lowest sequence number seen
	received int
	badSeq   int // RFC 3550 probation: the sequence number expected after a jump, or -1
	seen     [seenWindow]int64

	refTS     uint32 // RTP timestamp of the newest packet
	refExt    int64  // refTS unwrapped
	originExt int64  // unwrapped timestamp placed at originPos
	originPos int
	start     int  // where the stream (or its clock) began: none of its audio goes before
	shiftable bool // the first stream, before anything is final: may start earlier
}

type retiredStream struct {
	ssrc   uint32
	maxSeq uint16
}

type eventKey struct {
	stream int
	ts     uint32
}

// NewRecorder returns a recorder for the codec and telephone-event payload
// type of neg, bounded by opts.
func NewRecorder(neg Negotiated, opts RecordOptions) *Recorder {
	opts = opts.withDefaults()
	r := &Recorder{
		enc:        neg.Codec.Encoding,
		pt:         neg.Codec.PayloadType,
		dtmfPT:     neg.DTMFPayloadType,
		opts:       opts,
		maxSamples: durationSamples(opts.MaxLength),
		jitter:     durationSamples(opts.Jitter),
		blockLevel: opts.SilenceLevel * blockSamples,
	}
	if r.enc == 0 {
		r.enc = PCMU
	}
	if opts.SilenceTimeout > 0 {
		r.silenceSamples = durationSamples(opts.SilenceTimeout)
	}
	// A forward timestamp jump longer than this cannot be time passing: the
	// session would have stopped for lack of RTP first.
	jump := opts.NoRTPTimeout
	if jump < 0 || jump > time.Minute {
		jump = DefaultNoRTPTimeout
	}
	r.maxJump = durationSamples(jump + 2*time.Second)
	return r
}

// Write takes one RTP packet as read from the socket. It returns the reason
// the recording ended, or 0 while it goes on. Malformed packets and packets of
// other payload types are counted (Stats.Ignored) and dropped. After the end,
// Write only returns the reason again.
func (r *Recorder) Write(packet []byte) StopReason {
	if r.reason != 0 {
		return r.reason
	}
	if err := r.pkt.Unmarshal(packet); err != nil {
		r.stats.Ignored++
		return 0
	}
	return r.WritePacket(&r.pkt)
}

// WritePacket is Write for a parsed packet. The recorder keeps no reference
// to p.
func (r *Recorder) WritePacket(p *rtp.Packet) StopReason {
	if r.reason != 0 {
		return r.reason
	}
	event := r.dtmfPT != 0 && p.PayloadType == r.dtmfPT
	if p.Version != 2 || (p.PayloadType != r.pt && !event) {
		r.stats.Ignored++
		return 0
	}
	st := r.st
	if st == nil || p.SSRC != st.ssrc {
		if r.straggler(p) {
			r.stats.Late++
			return 0
		}
		st = r.startStream(p)
	}
	pos, ok := r.place(st, p)
	if !ok {
		return 0
	}
	r.stats.Packets++
	if event {
		r.event(st, p)
		return r.reason
	}
	r.writeAudio(st, pos, p.Payload)
	return r.reason
}

// straggler reports whether p belongs to an ended SSRC and is not newer than
// that stream's last packet.
func (r *Recorder) straggler(p *rtp.Packet) bool {
	for i := range r.nRet {
		if rs := r.retired[i]; rs.ssrc == p.SSRC {
			return int16(p.SequenceNumber-rs.maxSeq) <= 0
		}
	}
	return false
}

// startStream begins a stream for p's SSRC at the current end of the
// recording.
func (r *Recorder) startStream(p *rtp.Packet) *stream {
	if old := r.st; old != nil {
		r.retire(old)
	}
	r.nextID++
	st := &stream{id: r.nextID, ssrc: p.SSRC}
	st.resetSeq(p.SequenceNumber)
	r.resetTimeline(st, p.Timestamp)
	st.shiftable = r.nextID == 1
	r.st = st
	r.stats.Streams++
	return st
}

// retire keeps an ended stream's counts and its last sequence number.
func (r *Recorder) retire(st *stream) {
	r.stats.Lost += st.lost()
	copy(r.retired[1:], r.retired[:maxRetired-1])
	r.retired[0] = retiredStream{ssrc: st.ssrc, maxSeq: uint16(st.extMax)}
	r.nRet = min(r.nRet+1, maxRetired)
}

func (st *stream) resetSeq(seq uint16) {
	// Offset by 2^16 so no extended number is 0, the empty mark in seen.
	st.extMax = int64(seq) + 1<<16
	st.baseExt = st.extMax
	st.received = 0
	st.badSeq = -1
	st.seen = [seenWindow]int64{}
}

func (st *stream) lost() int {
	return max(0, int(st.extMax-st.baseExt+1)-st.received)
}

// resetTimeline maps timestamp ts to the current end of the recording.
func (r *Recorder) resetTimeline(st *stream, ts uint32) {
	st.refTS, st.refExt = ts, 0
	st.originExt, st.originPos, st.start = 0, r.buf.n, r.buf.n
	st.shiftable = false
}

// place runs the sequence checks for p and returns where its first sample
// goes. ok is false when p is dropped.
func (r *Recorder) place(st *stream, p *rtp.Packet) (pos int, ok bool) {
	seq, ts := p.SequenceNumber, p.Timestamp
	d := int(int16(seq - uint16(st.extMax)))
	switch {
	case d > 0 && d < maxDropout:
		ext := st.extMax + int64(d)
		st.extMax = ext
		st.mark(ext)
		st.badSeq = -1
		tsDelta := int64(int32(ts - st.refTS))
		if tsDelta < 0 || tsDelta > int64(r.maxJump) {
			// The sender restarted its clock: continue at the end.
			r.resetTimeline(st, ts)
			r.stats.Streams++
		} else {
			st.refTS = ts
			st.refExt += tsDelta
		}
	case d == 0 && st.received == 0:
		// The stream's first packet.
		st.mark(st.extMax)
	case d <= 0 && d >= -maxMisorder:
		ext := st.extMax + int64(d)
		if st.seen[ext%seenWindow] == ext {
			r.stats.Duplicates++
			return 0, false
		}
		tsDelta := int64(int32(ts - st.refTS))
		if tsDelta > 0 || tsDelta < -int64(r.maxJump) {
			r.stats.Ignored++
			return 0, false
		}
		st.mark(ext)
		st.baseExt = min(st.baseExt, ext)
	default:
		if int(seq) != st.badSeq {
			st.badSeq = int(seq+1) & 0xFFFF
			r.stats.Ignored++
			return 0, false
		}
		// Two packets in sequence after a jump: the sender restarted
		// (RFC 3550 A.1). Count the old numbering and start again.
		r.stats.Lost += st.lost()
		st.resetSeq(seq)
		st.mark(st.extMax)
		r.resetTimeline(st, ts)
		r.stats.Streams++
	}
	return st.originPos + int(st.refExt+int64(int32(ts-st.refTS))-st.originExt), true
}

func (st *stream) mark(ext int64) {
	st.seen[ext%seenWindow] = ext
	st.received++
}

// writeAudio decodes payload into the recording at pos.
func (r *Recorder) writeAudio(st *stream, pos int, payload []byte) {
	if len(payload) == 0 {
		return
	}
	floor := max(r.committed, st.start)
	if shift := -pos; shift > 0 && st.shiftable && r.committed == 0 && shift <= r.jitter && r.buf.n+shift <= chunkSamples {
		// An earlier packet of the first stream (which starts at 0): the
		// recording starts earlier. Nothing is final yet, so everything
		// moves.
		r.buf.shift(shift)
		st.originPos += shift
		pos = 0
	}
	if pos < floor {
		skip := floor - pos
		if skip >= len(payload) {
			r.stats.Late++
			return
		}
		payload, pos = payload[skip:], floor
	}
	end := min(pos+len(payload), r.maxSamples)
	if end <= pos {
		r.finish(StopMaxLength)
		return
	}
	r.buf.extend(end)
	r.buf.decode(r.enc, pos, payload[:end-pos])
	if r.buf.n >= r.maxSamples {
		r.finish(StopMaxLength)
		return
	}
	if c := r.buf.n - r.jitter; c > r.committed {
		r.committed = c
		st.shiftable = false
		r.analyze(false)
	}
}

// analyze runs silence detection over final audio in 20 ms blocks; at the
// end (all) it takes the last partial block too.
func (r *Recorder) analyze(all bool) {
	for r.analyzed < r.committed {
		n := min(blockSamples, r.committed-r.analyzed)
		if n < blockSamples && !all {
			return
		}
		sum := absSum(r.buf.block(r.analyzed, n))
		r.analyzed += n
		if sum*blockSamples < r.blockLevel*n {
			r.silentRun += n
		} else {
			r.silentRun, r.voicedEnd = 0, r.analyzed
		}
		if r.silenceSamples > 0 && r.silentRun >= r.silenceSamples && r.reason == 0 {
			// The recording ends where the silence reached its limit.
			r.buf.truncate(r.analyzed)
			r.committed = r.analyzed
			r.finish(StopSilence)
			return
		}
	}
}

// event handles a telephone-event packet.
func (r *Recorder) event(st *stream, p *rtp.Packet) {
	ev, ok := parseDTMF(p.Payload)
	if !ok {
		return
	}
	key := eventKey{stream: st.id, ts: p.Timestamp}
	for _, k := range r.events[:r.nEvents] {
		if k == key {
			return
		}
	}
	copy(r.events[1:], r.events[:recentEvents-1])
	r.events[0] = key
	r.nEvents = min(r.nEvents+1, recentEvents)
	digit := dtmfDigit(ev.code)
	if digit == 0 {
		return
	}
	if len(r.digits) < maxDigits {
		r.digits = append(r.digits, digit)
	}
	if digit == '#' {
		r.finish(StopDTMF)
	}
}

// finish ends the recording for reason: all pending audio becomes final.
func (r *Recorder) finish(reason StopReason) {
	if r.done {
		return
	}
	if r.reason == 0 {
		r.reason = reason
	}
	r.done = true
	r.committed = r.buf.n
	r.analyze(true)
	if r.st != nil {
		r.stats.Lost += r.st.lost()
	}
	n := r.buf.n
	if r.reason == StopSilence {
		n = min(n, r.voicedEnd+silenceTail)
	}
	samples := r.buf.flat(n)
	r.buf = sampleBuf{}
	r.result = Recording{
		Samples: samples,
		Reason:  r.reason,
		Voiced:  samplesDuration(r.voicedEnd),
		Digits:  string(r.digits),
		Stats:   r.stats,
	}
}

// Reason returns why the recording ended, or 0 while it goes on.
func (r *Recorder) Reason() StopReason { return r.reason }

// Stop ends the recording for reason unless it already ended, and returns
// it. Later calls return the same Recording. The Recorder must not be written
// after Stop; the Recording's samples belong to the caller.
func (r *Recorder) Stop(reason StopReason) Recording {
	r.finish(reason)
	return r.result
}

func durationSamples(d time.Duration) int {
	return int(d * SampleRate / time.Second)
}

func samplesDuration(n int) time.Duration {
	return time.Duration(n) * time.Second / SampleRate
}

// absSum returns the sum of absolute values of x, branch-free (speech
// changes sign too often to predict) with four independent sums.
func absSum(x []int16) int {
	var s0, s1, s2, s3 int
	for len(x) >= 4 {
		a, b, c, d := int(x[0]), int(x[1]), int(x[2]), int(x[3])
		ma, mb, mc, md := a>>63, b>>63, c>>63, d>>63
		s0 += (a ^ ma) - ma
		s1 += (b ^ mb) - mb
		s2 += (c ^ mc) - mc
		s3 += (d ^ md) - md
		x = x[4:]
	}
	for _, v := range x {
		m := int(v) >> 63
		s0 += (int(v) ^ m) - m
	}
	return s0 + s1 + s2 + s3
}
