package media

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
)

func TestAnswer(t *testing.T) {
	local := netip.MustParseAddr("203.0.113.50")
	tests := []struct {
		file      string
		err       error
		enc       Encoding
		pt, dtmf  uint8
		remote    string // "" for the zero AddrPort
		ptime     time.Duration
		dir       string // direction in the answer
		mlines    int
		chosenIdx int
	}{
		{file: "sipp_uac.sdp", enc: PCMU, pt: 0, remote: "127.0.0.1:6000", dir: "sendrecv", mlines: 1},
		{file: "sipp_uac_pcap.sdp", enc: PCMA, pt: 8, dtmf: 101, remote: "127.0.0.1:6000", dir: "sendrecv", mlines: 1},
		{file: "baresip.sdp", enc: PCMU, pt: 0, dtmf: 101, remote: "192.168.1.20:10044", dir: "sendrecv", mlines: 1},
		{file: "linphone.sdp", enc: PCMU, pt: 0, dtmf: 100, remote: "10.0.0.5:7078", dir: "sendrecv", mlines: 2},
		{file: "pcma_first_ptime30.sdp", enc: PCMA, pt: 8, dtmf: 101, remote: "203.0.113.9:30000", ptime: 30 * time.Millisecond, dir: "sendrecv", mlines: 1},
		{file: "media_level_c_recvonly.sdp", enc: PCMU, pt: 0, remote: "192.0.2.7:5004", dir: "sendonly", mlines: 1},
		{file: "hold_sendonly.sdp", enc: PCMA, pt: 8, dir: "recvonly", mlines: 1},
		{file: "ipv6.sdp", enc: PCMU, pt: 0, dtmf: 101, remote: "[2001:db8::5]:5006", dir: "sendrecv", mlines: 1},
		{file: "video_first_dynamic_pcmu.sdp", enc: PCMU, pt: 112, dtmf: 101, remote: "10.2.2.2:6000", dir: "inactive", mlines: 3, chosenIdx: 2},
		{file: "sloppy_no_t_lf.sdp", enc: PCMU, pt: 0, remote: "10.3.3.3:7000", dir: "sendrecv", mlines: 1},
		{file: "hostname_c.sdp", enc: PCMA, pt: 8, dir: "sendrecv", mlines: 1},
		{file: "g729_only.sdp", err: ErrNoCommonCodec},
		{file: "opus_only.sdp", err: ErrNoCommonCodec},
		{file: "srtp_only.sdp", err: ErrNoCommonCodec},
		{file: "pcmu_wrong_rate.sdp", err: ErrNoCommonCodec},
		{file: "garbage.sdp", err: ErrBadOffer},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			offer, err := os.ReadFile(filepath.Join("testdata", "sdp", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			answer, neg, err := Answer(offer, local, 20002)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if neg.Codec != (Codec{Encoding: tc.enc, PayloadType: tc.pt}) || neg.DTMFPayloadType != tc.dtmf {
				t.Errorf("codec %+v dtmf %d, want %v/%d dtmf %d", neg.Codec, neg.DTMFPayloadType, tc.enc, tc.pt, tc.dtmf)
			}
			remote := ""
			if neg.Remote.IsValid() {
				remote = neg.Remote.String()
			}
			if remote != tc.remote {
				t.Errorf("remote %q, want %q", remote, tc.remote)
			}
			if want := max(tc.ptime, DefaultPtime); neg.Ptime != want {
				t.Errorf("ptime %v, want %v", neg.Ptime, want)
			}
			var ans sdp.SessionDescription
			if err := ans.Unmarshal(answer); err != nil {
				t.Fatalf("answer does not parse: %v\n%s", err, answer)
			}
			if len(ans.MediaDescriptions) != tc.mlines {
				t.Fatalf("answer has %d m-lines, want %d\n%s", len(ans.MediaDescriptions), tc.mlines, answer)
			}
			for i, m := range ans.MediaDescriptions {
				if (i == tc.chosenIdx) != (m.MediaName.Port.Value != 0) {
					t.Errorf("m-line %d port %d\n%s", i, m.MediaName.Port.Value, answer)
				}
			}
			m := ans.MediaDescriptions[tc.chosenIdx]
			if m.MediaName.Port.Value != 20002 || ans.ConnectionInformation.Address.Address != "203.0.113.50" {
				t.Errorf("answer address:\n%s", answer)
			}
			if _, ok := m.Attribute(tc.dir); !ok {
				t.Errorf("answer lacks a=%s:\n%s", tc.dir, answer)
			}
			wantFormats := []string{itoa(tc.pt)}
			if tc.dtmf != 0 {
				wantFormats = append(wantFormats, itoa(tc.dtmf))
			}
			if strings.Join(m.MediaName.Formats, " ") != strings.Join(wantFormats, " ") {
				t.Errorf("answer formats %v, want %v", m.MediaName.Formats, wantFormats)
			}
			// The answer, read as an offer, settles the same codec.
			_, back, err := Answer(answer, local, 30000)
			if err != nil || back.Codec != neg.Codec || back.DTMFPayloadType != neg.DTMFPayloadType {
				t.Errorf("answer re-read: %+v %v", back, err)
			}
		})
	}
}

func itoa(v uint8) string { return strconv.Itoa(int(v)) }

func TestAnswerArguments(t *testing.T) {
	offer, _ := os.ReadFile(filepath.Join("testdata", "sdp", "sipp_uac.sdp"))
	if _, _, err := Answer(offer, netip.Addr{}, 20000); err == nil {
		t.Error("no local address accepted")
	}
	if _, _, err := Answer(offer, netip.MustParseAddr("10.0.0.1"), 0); err == nil {
		t.Error("port 0 accepted")
	}
	if _, _, err := Answer(nil, netip.MustParseAddr("10.0.0.1"), 20000); !errors.Is(err, ErrBadOffer) {
		t.Errorf("empty offer: %v", err)
	}
	big := append([]byte(nil), offer...)
	for len(big) <= MaxSDPSize {
		big = append(big, "a=x-filler:0123456789012345678901234567890123456789\r\n"...)
	}
	if _, _, err := Answer(big, netip.MustParseAddr("10.0.0.1"), 20000); !errors.Is(err, ErrBadOffer) {
		t.Errorf("oversized offer: %v", err)
	}
	// A v4-mapped local address is answered as IPv4.
	ans, _, err := Answer(offer, netip.MustParseAddr("::ffff:10.0.0.1"), 20000)
	if err != nil || !strings.Contains(string(ans), "c=IN IP4 10.0.0.1\r\n") {
		t.Errorf("mapped local: %v\n%s", err, ans)
	}
}
