package media

import "math"

// Resampling parameters: a Blackman-windowed sinc low-pass with its cutoff
// at 85 % of the lower Nyquist frequency (3.4 kHz when going down to 8 kHz,
// the telephone band) and 32 zero crossings on each side, so the band
// between the cutoff and 4 kHz is the transition and what lies above 4 kHz
// is attenuated by the window's stop band (about -58 dB) instead of folding
// back. The kernel is tabulated for resamplePhases fractional positions.
const (
	resampleCutoff    = 0.85
	resampleCrossings = 32
	resamplePhases    = 256
)

// resample converts x, at rate from, to 8 kHz, rounding and clipping to 16
// bits. At 8 kHz it only rounds.
func resample(x []float32, from int) []int16 {
	if from == SampleRate {
		out := make([]int16, len(x))
		for i, v := range x {
			out[i] = clip16(float64(v))
		}
		return out
	}
	ratio := float64(SampleRate) / float64(from)
	fc := 0.5 * resampleCutoff * min(1, ratio) // cycles per input sample
	half := int(math.Ceil(resampleCrossings / (2 * fc)))
	taps := 2 * half
	// table[p*taps+k] weighs input sample i-half+1+k for an output at
	// position i + p/resamplePhases.
	table := make([]float32, (resamplePhases+1)*taps)
	sums := make([]float64, resamplePhases+1)
	for p := 0; p <= resamplePhases; p++ {
		frac := float64(p) / resamplePhases
		for k := range taps {
			t := float64(k-half+1) - frac
			w := kernel(t, fc, float64(half))
			table[p*taps+k] = float32(w)
			sums[p] += w
		}
	}
	n := int((int64(len(x))*SampleRate + int64(from) - 1) / int64(from))
	out := make([]int16, n)
	for j := range out {
		num := int64(j) * int64(from)
		i := int(num / SampleRate)
		p := int((num%SampleRate*resamplePhases + SampleRate/2) / SampleRate)
		w := table[p*taps : (p+1)*taps]
		first := i - half + 1
		lo, hi := max(0, -first), min(taps, len(x)-first)
		acc := 0.0
		for k := lo; k < hi; k++ {
			acc += float64(w[k] * x[first+k])
		}
		out[j] = clip16(acc / sums[p])
	}
	return out
}

// kernel is the windowed sinc at t input samples from the output position.
func kernel(t, fc, half float64) float64 {
	if math.Abs(t) >= half {
		return 0
	}
	s := 2 * fc
	if t != 0 {
		s = math.Sin(2*math.Pi*fc*t) / (math.Pi * t)
	}
	u := t / half // -1..1
	return s * (0.42 + 0.5*math.Cos(math.Pi*u) + 0.08*math.Cos(2*math.Pi*u))
}

func clip16(v float64) int16 {
	v = math.Round(v)
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}
