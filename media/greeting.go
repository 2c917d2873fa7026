package media

import (
	"bytes"
	_ "embed"
	"sync"
)

// greetingWAV is the default greeting, made once with
//
//	espeak-ng -v en-us -s 150 -w g.wav "The person you are calling is not available. Please leave a message after the tone."
//	sox g.wav -r 8000 -b 16 -c 1 -e signed-integer greeting.wav
//
//go:embed greeting.wav
var greetingWAV []byte

var defaultGreeting = sync.OnceValue(func() []int16 {
	samples, err := DecodeWAV(bytes.NewReader(greetingWAV))
	if err != nil {
		panic("media: embedded greeting.wav: " + err.Error()) // a build defect; TestDefaultGreeting catches it
	}
	return samples
})

// DefaultGreeting returns the greeting played when a number has none of its
// own: "The person you are calling is not available. Please leave a message
// after the tone.", 8 kHz mono, about 5 s. The slice is the caller's.
func DefaultGreeting() []int16 {
	return append([]int16(nil), defaultGreeting()...)
}
