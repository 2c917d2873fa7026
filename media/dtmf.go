package media

import "encoding/binary"

// DTMF events (RFC 4733 §3.2): the payload of a telephone-event packet.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// One event keeps one RTP timestamp (its start) over all its packets: the
// updates while the key is held and the end packet, usually sent three times.
// The recorder reports an event once, on the first of its packets that
// arrives, keyed by stream and timestamp, so losses of the first packets and
// retransmitted ends change nothing.
type dtmfEvent struct {
	code     uint8
	end      bool
	duration uint16
}

// parseDTMF reads a telephone-event payload; ok is false when it is too
// short. Redundant trailing bytes are ignored.
func parseDTMF(payload []byte) (ev dtmfEvent, ok bool) {
	if len(payload) < 4 {
		return dtmfEvent{}, false
	}
	return dtmfEvent{
		code:     payload[0],
		end:      payload[1]&0x80 != 0,
		duration: binary.BigEndian.Uint16(payload[2:4]),
	}, true
}

// dtmfDigit maps an RFC 4733 event code to its key: 0-9, * (10), # (11),
// A-D (12-15). Other codes (tones, flash) map to 0.
func dtmfDigit(code uint8) byte {
	switch {
	case code <= 9:
		return '0' + code
	case code == 10:
		return '*'
	case code == 11:
		return '#'
	case code <= 15:
		return 'A' + code - 12
	}
	return 0
}
