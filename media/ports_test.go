package media

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in        string
		low, high int
		ok        bool
	}{
		{"20000-20999", 20000, 20999, true},
		{" 30000 - 30001 ", 30000, 30001, true},
		{"20001-20001", 0, 0, false}, // no even port
		{"20000", 0, 0, false},
		{"a-b", 0, 0, false},
		{"30000-20000", 0, 0, false},
		{"80-90", 0, 0, false},
		{"60000-70000", 0, 0, false},
	}
	for _, tc := range tests {
		low, high, err := ParsePortRange(tc.in)
		if (err == nil) != tc.ok || low != tc.low || high != tc.high {
			t.Errorf("%q: %d %d %v", tc.in, low, high, err)
		}
	}
}

func TestPortsAcquire(t *testing.T) {
	p, err := NewPorts(40001, 40010) // even ports 40002..40010: 5
	if err != nil {
		t.Fatal(err)
	}
	if p.Cap() != 5 {
		t.Fatalf("cap %d", p.Cap())
	}
	var got []int
	for range 5 {
		port, err := p.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, port)
	}
	if got[0] != 40002 || got[4] != 40010 {
		t.Fatalf("ports %v", got)
	}
	if _, err := p.Acquire(); !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("sixth: %v", err)
	}
	p.Release(40006)
	p.Release(40006)
	p.Release(12345)
	if port, err := p.Acquire(); err != nil || port != 40006 {
		t.Fatalf("after release: %d %v", port, err)
	}
	// Round robin: released ports come back last.
	p.Release(40002)
	p.Release(40004)
	if port, _ := p.Acquire(); port != 40002 {
		t.Fatalf("round robin gave %d", port)
	}
	if p.InUse() != 5-1 {
		t.Fatalf("in use %d", p.InUse())
	}
}

func TestPortsListen(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	// Another program holds the first port of the range: it is skipped.
	squatter, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41000})
	if err != nil {
		t.Skipf("port 41000 busy: %v", err)
	}
	defer squatter.Close()
	p, err := NewPorts(41000, 41003)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Listen(lo)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port() != 41002 || c.LocalAddr().(*net.UDPAddr).Port != 41002 {
		t.Fatalf("bound %v", c.LocalAddr())
	}
	if _, err := p.Listen(lo); !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("second listen: %v", err)
	}
	if p.InUse() != 1 {
		t.Fatalf("in use %d (the squatter's port must not stay reserved)", p.InUse())
	}
	c.Close()
	c.Close()
	if p.InUse() != 0 {
		t.Fatalf("in use %d after close", p.InUse())
	}
	c, err = p.Listen(lo)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
