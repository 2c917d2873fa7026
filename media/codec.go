package media

import "github.com/zaf/g711"

// Encoding names a G.711 law.
type Encoding uint8

// The encodings partyline speaks: G.711 µ-law and A-law, 8 kHz, one byte per
// sample.
const (
	PCMU Encoding = iota + 1 // G.711 µ-law, static payload type 0
	PCMA                     // G.711 A-law, static payload type 8
)

// String returns the encoding's SDP name: "PCMU" or "PCMA".
func (e Encoding) String() string {
	switch e {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	}
	return "unknown"
}

// Codec is a G.711 law with the RTP payload type the offer gave it.
type Codec struct {
	Encoding    Encoding
	PayloadType uint8
}

// SampleRate is the only audio rate the package produces and consumes: 8 kHz,
// G.711's clock rate and the rate of every []int16 in its API.
const SampleRate = 8000

// silence bytes: the code a G.711 encoder produces for 0.
var silenceByte = [3]byte{0, 0xFF, 0xD5}

// Decoding tables built once from zaf/g711, so a packet decodes by lookups.
var (
	ulawToLinear [256]int16
	alawToLinear [256]int16
)

func init() {
	for i := range 256 {
		ulawToLinear[i] = g711.DecodeUlawFrame(uint8(i))
		alawToLinear[i] = g711.DecodeAlawFrame(uint8(i))
	}
}

// Encode appends the G.711 encoding of samples to dst and returns it.
func (e Encoding) Encode(dst []byte, samples []int16) []byte {
	switch e {
	case PCMA:
		for _, s := range samples {
			dst = append(dst, g711.EncodeAlawFrame(s))
		}
	default:
		for _, s := range samples {
			dst = append(dst, g711.EncodeUlawFrame(s))
		}
	}
	return dst
}

// Decode appends the linear samples of G.711 payload to dst and returns it.
func (e Encoding) Decode(dst []int16, payload []byte) []int16 {
	table := e.table()
	for _, b := range payload {
		dst = append(dst, table[b])
	}
	return dst
}

// decodeInto writes the linear samples of payload into dst, which must be at
// least as long as payload.
func (e Encoding) decodeInto(dst []int16, payload []byte) {
	table := e.table()
	dst = dst[:len(payload)]
	for i, b := range payload {
		dst[i] = table[b]
	}
}

func (e Encoding) table() *[256]int16 {
	if e == PCMA {
		return &alawToLinear
	}
	return &ulawToLinear
}

// silence returns the byte that encodes 0 in e.
func (e Encoding) silence() byte {
	if e == PCMA {
		return silenceByte[PCMA]
	}
	return silenceByte[PCMU]
}
