package media

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
)

// ErrNoCommonCodec means the offer has no audio stream partyline can take:
// no PCMU or PCMA on plain RTP/AVP(F). The SIP side answers 488 Not
// Acceptable Here.
var ErrNoCommonCodec = errors.New("media: no common codec (PCMU or PCMA on RTP/AVP)")

// ErrBadOffer means the offer is not SDP that can be read. The SIP side
// answers 488 Not Acceptable Here (or 400); the error's text is for logs, never
// for a reason phrase.
var ErrBadOffer = errors.New("media: malformed SDP offer")

// MaxSDPSize bounds the offers Answer reads; larger bodies are ErrBadOffer.
const MaxSDPSize = 32 << 10

// DefaultPtime is the packet time partyline sends when the offer asks for
// none it can honour.
const DefaultPtime = 20 * time.Millisecond

// Negotiated is what an offer/answer exchange settled for one call.
type Negotiated struct {
	// Codec is the first PCMU or PCMA in the offer's format list, with the
	// payload type the offer used for it.
	Codec Codec
	// DTMFPayloadType is the payload type of telephone-event/8000 (RFC 4733),
	// or 0 when the offer had none.
	DTMFPayloadType uint8
	// Remote is where the offer asked for RTP (its c= and m= port). It is the
	// zero AddrPort when the address is a host name or 0.0.0.0 (hold). A
	// Session never sends there: anyone can write an SDP, so it sends only
	// to the source of the caller's RTP (symmetric RTP).
	Remote netip.AddrPort
	// Ptime is the packet time partyline sends: the offer's a=ptime when it
	// is a multiple of 10 ms from 10 to 60 ms, else 20 ms.
	Ptime time.Duration
	// Send reports that the caller wants our audio (offer sendrecv or
	// recvonly); Receive that the caller sends audio (sendrecv or sendonly).
	Send, Receive bool
}

// sessionIDs makes o= session ids unique within the process and increasing
// across restarts.
var sessionIDs atomic.Uint64

func init() { sessionIDs.Store(uint64(time.Now().Unix()) << 16) }

// Answer reads an SDP offer and returns partyline's answer for local:port.
// It takes the first audio stream on RTP/AVP or RTP/AVPF that offers PCMU or
// PCMA, choosing whichever of the two the offer lists first, plus
// telephone-event when offered; every other stream is refused with port 0, as
// RFC 3264 asks. The offer may lack its final CRLF or its t= line, use bare
// LF, or put lines slightly out of order: these are repaired before parsing.
// Errors: ErrBadOffer (unreadable), ErrNoCommonCodec (488), or a plain error
// for an invalid local address or port.
func Answer(offer []byte, local netip.Addr, port int) (answer []byte, neg Negotiated, err error) {
	if !local.IsValid() || local.IsUnspecified() {
		return nil, Negotiated{}, fmt.Errorf("media: answer needs a local address, got %v", local)
	}
	if port <= 0 || port > 65535 {
		return nil, Negotiated{}, fmt.Errorf("media: answer needs a port in 1-65535, got %d", port)
	}
	desc, err := parseOffer(offer)
	if err != nil {
		return nil, Negotiated{}, err
	}
	chosen := -1
	for i, m := range desc.MediaDescriptions {
		if n, ok := negotiateMedia(desc, m); ok {
			chosen, neg = i, n
			break
		}
	}
	if chosen < 0 {
		return nil, Negotiated{}, ErrNoCommonCodec
	}
	local = local.Unmap()
	addrType := "IP4"
	if local.Is6() {
		addrType = "IP6"
	}
	id := sessionIDs.Add(1)
	ans := &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "partyline", SessionID: id, SessionVersion: id,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: local.String(),
		},
		SessionName: "partyline",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: local.String()},
		},
		TimeDescriptions: []sdp.TimeDescription{{}},
	}
	for i, m := range desc.MediaDescriptions {
		if i != chosen {
			ans.MediaDescriptions = append(ans.MediaDescriptions, &sdp.MediaDescription{
				MediaName: sdp.MediaName{Media: m.MediaName.Media, Port: sdp.RangedPort{Value: 0},
					Protos: m.MediaName.Protos, Formats: m.MediaName.Formats},
			})
			continue
		}
		pt := strconv.Itoa(int(neg.Codec.PayloadType))
		md := &sdp.MediaDescription{
			MediaName: sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: port},
				Protos: m.MediaName.Protos, Formats: []string{pt}},
			Attributes: []sdp.Attribute{sdp.NewAttribute("rtpmap", pt+" "+neg.Codec.Encoding.String()+"/8000")},
		}
		if neg.DTMFPayloadType != 0 {
			ev := strconv.Itoa(int(neg.DTMFPayloadType))
			md.MediaName.Formats = append(md.MediaName.Formats, ev)
			md.Attributes = append(md.Attributes,
				sdp.NewAttribute("rtpmap", ev+" telephone-event/8000"),
				sdp.NewAttribute("fmtp", ev+" 0-16"))
		}
		md.Attributes = append(md.Attributes,
			sdp.NewAttribute("ptime", strconv.Itoa(int(neg.Ptime/time.Millisecond))),
			sdp.NewPropertyAttribute(answerDirection(neg)))
		ans.MediaDescriptions = append(ans.MediaDescriptions, md)
	}
	answer, err = ans.Marshal()
	if err != nil {
		return nil, Negotiated{}, fmt.Errorf("media: marshal answer: %w", err)
	}
	return answer, neg, nil
}

// answerDirection mirrors the offer's direction (RFC 3264 §6.1).
func answerDirection(n Negotiated) string {
	switch {
	case n.Send && n.Receive:
		return "sendrecv"
	case n.Send:
		return "sendonly"
	case n.Receive:
		return "recvonly"
	}
	return "inactive"
}

// parseOffer repairs and parses an offer.
func parseOffer(offer []byte) (*sdp.SessionDescription, error) {
	if len(offer) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrBadOffer)
	}
	if len(offer) > MaxSDPSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadOffer, len(offer), MaxSDPSize)
	}
	var desc sdp.SessionDescription
	if err := desc.UnmarshalString(normalizeSDP(offer)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	return &desc, nil
}

// Line ranks in the order RFC 4566 §5 requires; types not listed are
// dropped (the RFC says to ignore them; pion refuses them). t= and r= share a
// rank so each r= stays after its t=.
var (
	sessionRank = map[byte]int{'v': 0, 'o': 1, 's': 2, 'i': 3, 'u': 4, 'e': 5, 'p': 6, 'c': 7, 'b': 8, 't': 9, 'r': 9, 'z': 10, 'k': 11, 'a': 12}
	mediaRank   = map[byte]int{'m': 0, 'i': 1, 'c': 2, 'b': 3, 'k': 4, 'a': 5}
)

// normalizeSDP rewrites an SDP body into the form pion/sdp accepts: CRLF
// line ends including a final one, no blank or unknown lines, lines of each
// section in RFC order, and a "t=0 0" when the session has no t= line.
func normalizeSDP(b []byte) string {
	type line struct {
		rank int
		text string
	}
	var sections [][]line
	cur := []line(nil)
	hasT := false
	for _, raw := range strings.Split(string(b), "\n") {
		text := strings.TrimRight(raw, "\r \t")
		if len(text) < 2 || text[1] != '=' {
			continue
		}
		key := text[0]
		if key == 'm' {
			sections = append(sections, cur)
			cur = nil
		}
		ranks := sessionRank
		if key == 'm' || len(sections) > 0 {
			ranks = mediaRank
		}
		rank, ok := ranks[key]
		if !ok {
			continue
		}
		if key == 't' && len(sections) == 0 {
			hasT = true
		}
		cur = append(cur, line{rank, text})
	}
	sections = append(sections, cur)
	if !hasT {
		sections[0] = append(sections[0], line{sessionRank['t'], "t=0 0"})
	}
	var sb strings.Builder
	sb.Grow(len(b) + 16)
	for _, sec := range sections {
		sort.SliceStable(sec, func(i, j int) bool { return sec[i].rank < sec[j].rank })
		for _, l := range sec {
			sb.WriteString(l.text)
			sb.WriteString("\r\n")
		}
	}
	return sb.String()
}

// negotiateMedia decides whether partyline can take media description m.
func negotiateMedia(desc *sdp.SessionDescription, m *sdp.MediaDescription) (Negotiated, bool) {
	if m.MediaName.Media != "audio" || m.MediaName.Port.Value <= 0 || m.MediaName.Port.Value > 65535 {
		return Negotiated{}, false
	}
	proto := strings.Join(m.MediaName.Protos, "/")
	if proto != "RTP/AVP" && proto != "RTP/AVPF" {
		return Negotiated{}, false
	}
	rtpmaps := map[int]string{}
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		ptText, enc, ok := strings.Cut(strings.TrimSpace(a.Value), " ")
		if pt, err := strconv.Atoi(ptText); ok && err == nil {
			if _, seen := rtpmaps[pt]; !seen {
				enc = strings.ToLower(strings.TrimSpace(enc))
				rtpmaps[pt] = strings.TrimSuffix(enc, "/1") // one channel is the default
			}
		}
	}
	var n Negotiated
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.Atoi(f)
		if err != nil || pt < 0 || pt > 127 {
			continue
		}
		enc, mapped := rtpmaps[pt]
		if !mapped {
			switch pt {
			case 0:
				enc = "pcmu/8000"
			case 8:
				enc = "pcma/8000"
			}
		}
		switch {
		case n.Codec.Encoding == 0 && enc == "pcmu/8000":
			n.Codec = Codec{Encoding: PCMU, PayloadType: uint8(pt)}
		case n.Codec.Encoding == 0 && enc == "pcma/8000":
			n.Codec = Codec{Encoding: PCMA, PayloadType: uint8(pt)}
		case n.DTMFPayloadType == 0 && enc == "telephone-event/8000" && dynamicPT(pt):
			n.DTMFPayloadType = uint8(pt)
		}
	}
	if n.Codec.Encoding == 0 {
		return Negotiated{}, false
	}
	conn := m.ConnectionInformation
	if conn == nil {
		conn = desc.ConnectionInformation
	}
	if conn != nil && conn.Address != nil {
		host, _, _ := strings.Cut(conn.Address.Address, "/")
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() {
			n.Remote = netip.AddrPortFrom(ip.Unmap(), uint16(m.MediaName.Port.Value))
		}
	}
	n.Ptime = DefaultPtime
	ptime, ok := m.Attribute("ptime")
	if !ok {
		ptime, ok = desc.Attribute("ptime")
	}
	if ok {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(ptime), 64); err == nil {
			d := time.Duration(ms * float64(time.Millisecond)).Round(time.Millisecond)
			if d >= 10*time.Millisecond && d <= 60*time.Millisecond && d%(10*time.Millisecond) == 0 {
				n.Ptime = d
			}
		}
	}
	dir := direction(m.Attributes)
	if dir == "" {
		dir = direction(desc.Attributes)
	}
	switch dir {
	case "sendonly":
		n.Receive = true
	case "recvonly":
		n.Send = true
	case "inactive":
	default:
		n.Send, n.Receive = true, true
	}
	return n, true
}

// dynamicPT reports whether pt may carry telephone-event: outside the static
// range and the values that collide with RTCP packet types.
func dynamicPT(pt int) bool {
	return pt >= 35 && pt <= 127 && (pt < 72 || pt > 76)
}

// direction returns the last direction attribute among attrs, or "".
func direction(attrs []sdp.Attribute) string {
	dir := ""
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			dir = a.Key
		}
	}
	return dir
}
