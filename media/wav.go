package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/go-audio/audio"
	"github.com/go-audio/wav"
)

// ErrBadWAV means the file is not a WAV file, or a broken one.
var ErrBadWAV = errors.New("media: not a readable WAV file")

// ErrUnsupportedWAV means the file is a WAV file in an encoding partyline
// does not read (compressed, floating point, ...).
var ErrUnsupportedWAV = errors.New("media: unsupported WAV encoding")

// MaxWAVSize bounds the files DecodeWAV reads (about 6 minutes of 44.1 kHz
// 16-bit stereo).
const MaxWAVSize = 64 << 20

// convertHint ends every unsupported-file error: what to do next.
const convertHint = "convert it first, e.g. sox in.wav -r 8000 -b 16 -c 1 out.wav"

// WAV format tags.
const (
	wavePCM        = 0x0001
	waveFloat      = 0x0003
	waveALaw       = 0x0006
	waveMuLaw      = 0x0007
	waveExtensible = 0xFFFE
)

// wavInfo is what the structural check learnt from a file.
type wavInfo struct {
	tag      uint16
	channels int
	rate     int
	bits     int
	data     []byte // whole frames only
}

// DecodeWAV reads a WAV file and returns its audio as 8 kHz mono samples.
// It accepts integer PCM of 8, 16, 24 or 32 bits (WAVE_FORMAT_PCM or
// WAVE_FORMAT_EXTENSIBLE), G.711 A-law and µ-law, mono or up to 8 channels
// (mixed down by averaging), at any rate from 1 kHz to 384 kHz (resampled
// to 8 kHz through a Blackman-windowed sinc low-pass at 3.4 kHz with 32 zero
// crossings a side, so nothing above 4 kHz folds back into the band). Other files fail with
// ErrBadWAV or ErrUnsupportedWAV and a message that says what to do;
// DecodeWAV never panics.
//
// The file is first checked chunk by chunk (sizes within the file, one fmt
// and one data chunk; a data chunk whose size overruns the file, as streamed
// writers leave it, is cut at the end of the file) and then decoded by
// go-audio/wav from a canonical copy holding only those two chunks.
func DecodeWAV(r io.ReadSeeker) (samples []int16, err error) {
	defer func() {
		if p := recover(); p != nil {
			samples, err = nil, fmt.Errorf("%w: decoder failed: %v", ErrBadWAV, p)
		}
	}()
	b, err := io.ReadAll(io.LimitReader(r, MaxWAVSize+1))
	if err != nil {
		return nil, fmt.Errorf("media: read WAV: %w", err)
	}
	if len(b) > MaxWAVSize {
		return nil, fmt.Errorf("%w: larger than %d MiB; shorten it or lower its rate", ErrUnsupportedWAV, MaxWAVSize>>20)
	}
	info, err := checkWAV(b)
	if err != nil {
		return nil, err
	}
	var mono []float32
	switch info.tag {
	case waveALaw, waveMuLaw:
		mono = decodeG711WAV(info)
	default:
		mono, err = decodePCMWAV(info)
		if err != nil {
			return nil, err
		}
	}
	return resample(mono, info.rate), nil
}

// checkWAV walks the RIFF chunks of b.
func checkWAV(b []byte) (wavInfo, error) {
	if len(b) >= 4 && (string(b[:4]) == "RIFX" || string(b[:4]) == "RF64") {
		return wavInfo{}, fmt.Errorf("%w: %s container; %s", ErrUnsupportedWAV, b[:4], convertHint)
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return wavInfo{}, fmt.Errorf("%w: no RIFF/WAVE header", ErrBadWAV)
	}
	var (
		info          wavInfo
		haveFmt, data bool
	)
	for off := 12; off+8 <= len(b) && !(haveFmt && data); {
		id := string(b[off : off+4])
		size := int64(binary.LittleEndian.Uint32(b[off+4:]))
		body := int64(off + 8)
		end := body + size
		switch id {
		case "fmt ":
			if haveFmt {
				return wavInfo{}, fmt.Errorf("%w: two fmt chunks", ErrBadWAV)
			}
			if size < 16 || size > 1024 || end > int64(len(b)) {
				return wavInfo{}, fmt.Errorf("%w: fmt chunk of %d bytes", ErrBadWAV, size)
			}
			f := b[body:end]
			info.tag = binary.LittleEndian.Uint16(f[0:])
			info.channels = int(binary.LittleEndian.Uint16(f[2:]))
			info.rate = int(binary.LittleEndian.Uint32(f[4:]))
			info.bits = int(binary.LittleEndian.Uint16(f[14:]))
			if info.tag == waveExtensible {
				if size < 40 {
					return wavInfo{}, fmt.Errorf("%w: extensible fmt chunk of %d bytes", ErrBadWAV, size)
				}
				info.tag = binary.LittleEndian.Uint16(f[24:]) // the sub-format GUID starts with the tag
			}
			haveFmt = true
		case "data":
			if end > int64(len(b)) {
				end = int64(len(b))
			}
			info.data = b[body:end]
			data = true
		}
		next := end + size&1
		if next > int64(len(b)) {
			break
		}
		off = int(next)
	}
	if !haveFmt {
		return wavInfo{}, fmt.Errorf("%w: no fmt chunk", ErrBadWAV)
	}
	if !data {
		return wavInfo{}, fmt.Errorf("%w: no data chunk", ErrBadWAV)
	}
	switch info.tag {
	case wavePCM:
		switch info.bits {
		case 8, 16, 24, 32:
		default:
			return wavInfo{}, fmt.Errorf("%w: %d-bit PCM; %s", ErrUnsupportedWAV, info.bits, convertHint)
		}
	case waveALaw, waveMuLaw:
		if info.bits != 8 {
			return wavInfo{}, fmt.Errorf("%w: %d-bit G.711", ErrBadWAV, info.bits)
		}
	case waveFloat:
		return wavInfo{}, fmt.Errorf("%w: floating-point samples; %s", ErrUnsupportedWAV, convertHint)
	default:
		return wavInfo{}, fmt.Errorf("%w: compressed (format 0x%04x); %s", ErrUnsupportedWAV, info.tag, convertHint)
	}
	if info.channels < 1 || info.channels > 8 {
		return wavInfo{}, fmt.Errorf("%w: %d channels; %s", ErrUnsupportedWAV, info.channels, convertHint)
	}
	if info.rate < 1000 || info.rate > 384000 {
		return wavInfo{}, fmt.Errorf("%w: sample rate %d Hz; %s", ErrUnsupportedWAV, info.rate, convertHint)
	}
	frame := info.channels * info.bits / 8
	info.data = info.data[:len(info.data)/frame*frame]
	if len(info.data) == 0 {
		return wavInfo{}, fmt.Errorf("%w: no audio in the data chunk", ErrBadWAV)
	}
	return info, nil
}

// decodePCMWAV decodes integer PCM with go-audio/wav and mixes it to mono,
// scaled to 16 bits.
func decodePCMWAV(info wavInfo) ([]float32, error) {
	canon := canonicalWAV(info)
	d := wav.NewDecoder(bytes.NewReader(canon))
	d.ReadInfo()
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadWAV, err)
	}
	if int(d.NumChans) != info.channels || int(d.SampleRate) != info.rate || int(d.BitDepth) != info.bits {
		return nil, fmt.Errorf("%w: header read back differently", ErrBadWAV)
	}
	var scale float32
	offset := 0
	switch info.bits {
	case 8:
		scale, offset = 256, 128 // unsigned
	case 16:
		scale = 1
	case 24:
		scale = 1.0 / 256
	case 32:
		scale = 1.0 / 65536
	}
	ch := info.channels
	frames := len(info.data) / (ch * info.bits / 8)
	mono := make([]float32, 0, frames)
	buf := &audio.IntBuffer{Data: make([]int, 4096*ch)}
	for len(mono) < frames {
		n, err := d.PCMBuffer(buf)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadWAV, err)
		}
		if n == 0 {
			break
		}
		for i := 0; i+ch <= n; i += ch {
			sum := 0
			for _, v := range buf.Data[i : i+ch] {
				sum += v - offset
			}
			mono = append(mono, float32(sum)*scale/float32(ch))
		}
	}
	if len(mono) == 0 {
		return nil, fmt.Errorf("%w: no audio decoded", ErrBadWAV)
	}
	return mono, nil
}

// canonicalWAV returns a WAV file holding only a PCM fmt chunk and the data
// of info.
func canonicalWAV(info wavInfo) []byte {
	frame := info.channels * info.bits / 8
	b := make([]byte, 0, 44+len(info.data))
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(36+len(info.data)))
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, wavePCM)
	b = binary.LittleEndian.AppendUint16(b, uint16(info.channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(info.rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(info.rate*frame))
	b = binary.LittleEndian.AppendUint16(b, uint16(frame))
	b = binary.LittleEndian.AppendUint16(b, uint16(info.bits))
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(info.data)))
	return append(b, info.data...)
}

// decodeG711WAV decodes A-law or µ-law WAV data and mixes it to mono.
func decodeG711WAV(info wavInfo) []float32 {
	table := PCMU.table()
	if info.tag == waveALaw {
		table = PCMA.table()
	}
	ch := info.channels
	mono := make([]float32, 0, len(info.data)/ch)
	for i := 0; i+ch <= len(info.data); i += ch {
		sum := 0
		for _, v := range info.data[i : i+ch] {
			sum += int(table[v])
		}
		mono = append(mono, float32(sum)/float32(ch))
	}
	return mono
}

// EncodeWAV writes samples as a 16-bit 8 kHz mono PCM WAV file to w.
func EncodeWAV(w io.Writer, samples []int16) error {
	var f memFile
	e := wav.NewEncoder(&f, SampleRate, 16, 1, wavePCM)
	data := make([]int, len(samples))
	for i, s := range samples {
		data[i] = int(s)
	}
	buf := &audio.IntBuffer{Format: &audio.Format{NumChannels: 1, SampleRate: SampleRate}, Data: data, SourceBitDepth: 16}
	if err := e.Write(buf); err != nil {
		return fmt.Errorf("media: encode WAV: %w", err)
	}
	if err := e.Close(); err != nil {
		return fmt.Errorf("media: encode WAV: %w", err)
	}
	if _, err := w.Write(f.b); err != nil {
		return fmt.Errorf("media: write WAV: %w", err)
	}
	return nil
}

// memFile is an in-memory io.WriteSeeker for the WAV encoder, which seeks
// back to fill in sizes.
type memFile struct {
	b   []byte
	pos int
}

func (f *memFile) Write(p []byte) (int, error) {
	if end := f.pos + len(p); end > len(f.b) {
		f.b = append(f.b, make([]byte, end-len(f.b))...)
	}
	copy(f.b[f.pos:], p)
	f.pos += len(p)
	return len(p), nil
}

func (f *memFile) Seek(offset int64, whence int) (int64, error) {
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = int64(f.pos)
	case io.SeekEnd:
		base = int64(len(f.b))
	default:
		return 0, errors.New("media: bad whence")
	}
	p := base + offset
	if p < 0 {
		return 0, errors.New("media: negative seek")
	}
	f.pos = int(p)
	return p, nil
}
