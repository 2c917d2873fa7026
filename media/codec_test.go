package media

import (
	"math"
	"testing"
)

// G.711 keeps a sample within half a quantisation step, which grows with
// the segment: about 1/32 of the amplitude, and a few units near zero.
func TestG711RoundTrip(t *testing.T) {
	for _, enc := range []Encoding{PCMU, PCMA} {
		worst := 0.0
		for v := math.MinInt16; v <= math.MaxInt16; v++ {
			got := roundTrip(enc, []int16{int16(v)})[0]
			err := math.Abs(float64(got) - float64(v))
			if err > math.Abs(float64(v))/32+16 {
				t.Fatalf("%v: %d decodes to %d", enc, v, got)
			}
			worst = max(worst, err)
		}
		t.Logf("%v: worst error %.0f", enc, worst)
		if got := enc.Decode(nil, []byte{enc.silence()})[0]; got < -8 || got > 8 {
			t.Errorf("%v silence decodes to %d", enc, got)
		}
	}
	if PCMU.String() != "PCMU" || PCMA.String() != "PCMA" || Encoding(9).String() != "unknown" {
		t.Error("encoding names")
	}
}
