package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sineFrames returns frames of a sine at freq Hz sampled at rate, amplitude
// amp (of 32767), on every channel.
func sineFrames(rate, channels, n int, freq, amp float64) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		v := amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))
		out[i] = make([]float64, channels)
		for c := range out[i] {
			out[i][c] = v
		}
	}
	return out
}

// makeWAV writes frames (16-bit scale) as a WAV file of the given tag and
// sample width.
func makeWAV(tag uint16, rate, bits int, frames [][]float64) []byte {
	var data []byte
	for _, f := range frames {
		for _, v := range f {
			switch {
			case tag == waveMuLaw:
				data = append(data, PCMU.Encode(nil, []int16{int16(v)})...)
			case tag == waveALaw:
				data = append(data, PCMA.Encode(nil, []int16{int16(v)})...)
			case bits == 8:
				data = append(data, byte(int(math.Round(v/256))+128))
			case bits == 16:
				data = binary.LittleEndian.AppendUint16(data, uint16(int16(math.Round(v))))
			case bits == 24:
				x := int32(math.Round(v * 256))
				data = append(data, byte(x), byte(x>>8), byte(x>>16))
			case bits == 32:
				data = binary.LittleEndian.AppendUint32(data, uint32(int32(math.Round(v*65536))))
			}
		}
	}
	b := canonicalWAV(wavInfo{tag: wavePCM, channels: len(frames[0]), rate: rate, bits: bits, data: data})
	binary.LittleEndian.PutUint16(b[20:], tag)
	return b
}

// zeroCrossings counts sign changes, from which a sine's frequency follows.
func zeroCrossings(x []int16) int {
	n := 0
	for i := 1; i < len(x); i++ {
		if (x[i-1] < 0) != (x[i] < 0) {
			n++
		}
	}
	return n
}

func rms(x []int16) float64 {
	s := 0.0
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(max(1, len(x))))
}

func TestWAVRoundTrip(t *testing.T) {
	samples := speech(8000, 3)
	samples = append(samples, math.MaxInt16, math.MinInt16, 0, -1, 1)
	var buf bytes.Buffer
	if err := EncodeWAV(&buf, samples); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if string(b[:4]) != "RIFF" || binary.LittleEndian.Uint32(b[24:]) != 8000 || binary.LittleEndian.Uint16(b[34:]) != 16 || binary.LittleEndian.Uint16(b[22:]) != 1 {
		t.Fatalf("header % x", b[:44])
	}
	got, err := DecodeWAV(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, samples); i >= 0 {
		t.Fatalf("differs at %d", i)
	}
	if _, err := exec.LookPath("soxi"); err == nil {
		path := filepath.Join(t.TempDir(), "x.wav")
		os.WriteFile(path, b, 0o600)
		out, err := exec.Command("soxi", "-s", path).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "8005" {
			t.Errorf("soxi: %s %v", out, err)
		}
	}
}

func TestWAVFormats(t *testing.T) {
	tests := []struct {
		name           string
		tag            uint16
		rate, bits, ch int
	}{
		{"8 kHz 16-bit mono", wavePCM, 8000, 16, 1},
		{"8 kHz 8-bit mono", wavePCM, 8000, 8, 1},
		{"16 kHz 16-bit mono", wavePCM, 16000, 16, 1},
		{"44.1 kHz 16-bit stereo", wavePCM, 44100, 16, 2},
		{"48 kHz 24-bit stereo", wavePCM, 48000, 24, 2},
		{"22.05 kHz 32-bit mono", wavePCM, 22050, 32, 1},
		{"11.025 kHz 8-bit stereo", wavePCM, 11025, 8, 2},
		{"6 kHz 16-bit mono (upsampled)", wavePCM, 6000, 16, 1},
		{"8 kHz mu-law", waveMuLaw, 8000, 8, 1},
		{"8 kHz A-law stereo", waveALaw, 8000, 8, 2},
	}
	const seconds, freq = 2, 440.0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := makeWAV(tc.tag, tc.rate, tc.bits, sineFrames(tc.rate, tc.ch, tc.rate*seconds, freq, 10000))
			got, err := DecodeWAV(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 8000*seconds {
				t.Fatalf("%d samples, want %d", len(got), 8000*seconds)
			}
			// Away from the edges the frequency is kept (880 crossings a
			// second) and so is the level (10000/√2).
			mid := got[2000 : len(got)-2000]
			zc := float64(zeroCrossings(mid)) / (float64(len(mid)) / 8000)
			if math.Abs(zc-2*freq) > 4 {
				t.Errorf("%.1f zero crossings a second, want %v", zc, 2*freq)
			}
			if r := rms(mid); math.Abs(r-10000/math.Sqrt2) > 250 {
				t.Errorf("rms %.0f", r)
			}
		})
	}
}

// Tones above 4 kHz must not fold back into the telephone band.
func TestResampleAntiAliasing(t *testing.T) {
	for _, rate := range []int{16000, 44100, 48000} {
		b := makeWAV(wavePCM, rate, 16, sineFrames(rate, 1, rate, 6000, 10000))
		got, err := DecodeWAV(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if r := rms(got[400 : len(got)-400]); r > 30 {
			t.Errorf("%d Hz: a 6 kHz tone leaves rms %.0f (of 7071)", rate, r)
		}
	}
}

func TestWAVTolerance(t *testing.T) {
	base := makeWAV(wavePCM, 8000, 16, sineFrames(8000, 1, 800, 440, 8000))
	want, err := DecodeWAV(bytes.NewReader(base))
	if err != nil {
		t.Fatal(err)
	}
	// A LIST chunk before fmt, an odd-sized chunk, and a data chunk whose
	// size says "unknown" (streamed writers).
	var b []byte
	b = append(b, base[:12]...)
	b = append(b, "LIST"...)
	b = binary.LittleEndian.AppendUint32(b, 5)
	b = append(b, "INFOx\x00"...)
	b = append(b, base[12:36]...)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, 0xFFFFFFFF)
	b = append(b, base[44:]...)
	b = append(b, 0x12) // half a sample at the end
	got, err := DecodeWAV(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("differs at %d (len %d, want %d)", i, len(got), len(want))
	}
	// WAVE_FORMAT_EXTENSIBLE with a PCM sub-format.
	var ext []byte
	ext = append(ext, base[:12]...)
	ext = append(ext, "fmt "...)
	ext = binary.LittleEndian.AppendUint32(ext, 40)
	ext = append(ext, base[20:36]...)
	binary.LittleEndian.PutUint16(ext[20:], waveExtensible)
	ext = append(ext, 22, 0, 16, 0, 4, 0, 0, 0) // cbSize, valid bits, channel mask
	ext = append(ext, 1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71)
	ext = append(ext, base[36:]...)
	got, err = DecodeWAV(bytes.NewReader(ext))
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("extensible differs at %d", i)
	}
}

func TestWAVErrors(t *testing.T) {
	good := makeWAV(wavePCM, 8000, 16, sineFrames(8000, 1, 80, 440, 8000))
	patch := func(off int, v uint16) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	tests := []struct {
		name string
		file []byte
		want error
		hint string
	}{
		{"empty", nil, ErrBadWAV, ""},
		{"text", []byte("hello, I am not a wav file at all"), ErrBadWAV, ""},
		{"header only", good[:12], ErrBadWAV, "fmt"},
		{"no data chunk", good[:36], ErrBadWAV, "data"},
		{"empty data", good[:44], ErrBadWAV, "no audio"},
		{"short fmt", append(append(bytes.Clone(good[:12]), "fmt \x08\x00\x00\x00"...), good[20:28]...), ErrBadWAV, "fmt"},
		{"huge fmt", append(append(bytes.Clone(good[:12]), "fmt \xff\xff\xff\x7f"...), good[20:]...), ErrBadWAV, "fmt"},
		{"float", patch(20, waveFloat), ErrUnsupportedWAV, "sox"},
		{"ADPCM", patch(20, 0x0011), ErrUnsupportedWAV, "sox"},
		{"12-bit", patch(34, 12), ErrUnsupportedWAV, "sox"},
		{"no channels", patch(22, 0), ErrUnsupportedWAV, ""},
		{"9 channels", patch(22, 9), ErrUnsupportedWAV, ""},
		{"rate 0", patch(24, 0), ErrUnsupportedWAV, ""},
		{"RIFX", append([]byte("RIFX"), good[4:]...), ErrUnsupportedWAV, "RIFX"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeWAV(bytes.NewReader(tc.file))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.hint) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.hint)
			}
		})
	}
}

func TestDefaultGreeting(t *testing.T) {
	g := DefaultGreeting()
	if d := samplesDuration(len(g)); d < 3e9 || d > 8e9 {
		t.Fatalf("greeting lasts %v", d)
	}
	if rms(g) < 500 {
		t.Fatalf("greeting is nearly silent: rms %.0f", rms(g))
	}
	g[0] = 12345
	if DefaultGreeting()[0] == 12345 {
		t.Fatal("DefaultGreeting shares its slice")
	}
	if len(greetingWAV) > 100<<10 {
		t.Errorf("greeting.wav is %d bytes", len(greetingWAV))
	}
	b := Beep()
	if samplesDuration(len(b)) != 300e6 || zeroCrossings(b) < 590 || zeroCrossings(b) > 610 || b[0] != 0 {
		t.Fatalf("beep: %d samples, %d crossings, first %d", len(b), zeroCrossings(b), b[0])
	}
}

// Files written by sox, when it is installed: what users will bring.
func TestWAVFromSox(t *testing.T) {
	if _, err := exec.LookPath("sox"); err != nil {
		t.Skip("sox not installed")
	}
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"44.1 kHz 16-bit stereo", []string{"-r", "44100", "-c", "2", "-b", "16"}, nil},
		{"11.025 kHz 8-bit mono", []string{"-r", "11025", "-c", "1", "-b", "8"}, nil},
		{"48 kHz 24-bit mono", []string{"-r", "48000", "-c", "1", "-b", "24"}, nil},
		{"8 kHz u-law", []string{"-r", "8000", "-c", "1", "-e", "u-law"}, nil},
		{"32-bit float", []string{"-r", "16000", "-c", "1", "-e", "floating-point", "-b", "32"}, ErrUnsupportedWAV},
		{"IMA ADPCM", []string{"-r", "8000", "-c", "1", "-e", "ima-adpcm"}, ErrUnsupportedWAV},
	}
	dir := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strconv.Itoa(i)+".wav")
			args := append([]string{"-n"}, tc.args...)
			args = append(args, path, "synth", "1", "sine", "440", "vol", "0.3")
			if out, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
				t.Fatalf("sox: %v\n%s", err, out)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := DecodeWAV(f)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			zc := zeroCrossings(got[800 : len(got)-800])
			if len(got) != 8000 || zc < 870*0.8-5 || zc > 880*0.8+5 {
				t.Fatalf("%d samples, %d crossings", len(got), zc)
			}
		})
	}
}
