package media

// chunkSamples is the unit a recording grows by: one second, a multiple of
// the 20 ms silence block so no block straddles two chunks.
const chunkSamples = SampleRate

// sampleBuf holds a recording in chunks of one second, so it grows without
// copying what it holds; flat copies it out once at the end. Samples past
// the written ones are zero: a gap is silence without being written.
type sampleBuf struct {
	chunks [][]int16
	n      int
}

// extend makes the buffer n samples long; new samples are zero.
func (b *sampleBuf) extend(n int) {
	for len(b.chunks)*chunkSamples < n {
		b.chunks = append(b.chunks, make([]int16, chunkSamples))
	}
	b.n = max(b.n, n)
}

// truncate shortens the buffer to n samples; it is never extended again.
func (b *sampleBuf) truncate(n int) { b.n = min(b.n, n) }

// decode writes the decoded payload at pos; pos+len(payload) <= b.n.
func (b *sampleBuf) decode(enc Encoding, pos int, payload []byte) {
	for len(payload) > 0 {
		c, off := pos/chunkSamples, pos%chunkSamples
		k := min(len(payload), chunkSamples-off)
		enc.decodeInto(b.chunks[c][off:off+k], payload[:k])
		payload, pos = payload[k:], pos+k
	}
}

// block returns samples [pos, pos+n), which must lie in one chunk.
func (b *sampleBuf) block(pos, n int) []int16 {
	off := pos % chunkSamples
	return b.chunks[pos/chunkSamples][off : off+n]
}

// shift moves the first chunk's samples later by k, zeroing the first k;
// the buffer must fit in one chunk afterwards.
func (b *sampleBuf) shift(k int) {
	b.extend(b.n + k)
	c := b.chunks[0]
	copy(c[k:b.n], c[:b.n-k])
	clear(c[:k])
}

// flat returns the first n samples as one slice.
func (b *sampleBuf) flat(n int) []int16 {
	out := make([]int16, 0, n)
	for _, c := range b.chunks {
		if len(out) == n {
			break
		}
		out = append(out, c[:min(chunkSamples, n-len(out))]...)
	}
	return out
}
