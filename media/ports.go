package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// ErrPortsExhausted means every RTP port of the range is in use: the SIP side
// answers the INVITE 503 (or 486) and logs it.
var ErrPortsExhausted = errors.New("media: every RTP port of the range is in use")

// The default RTP port range (--rtp-ports 20000-20999): 500 even ports, so
// 500 calls with media at once.
const (
	DefaultPortLow  = 20000
	DefaultPortHigh = 20999
)

// Ports hands out the even UDP ports of a range LOW-HIGH for RTP, as is
// customary (the odd port above each is left for RTCP). It is bounded by the
// range and safe for concurrent use. Ports are handed out round robin, so a
// port just released is the last to be reused and late packets of an ended
// call do not reach the next one.
type Ports struct {
	low, high int
	mu        sync.Mutex
	used      map[int]bool
	next      int
}

// ParsePortRange parses "LOW-HIGH" as given to --rtp-ports.
func ParsePortRange(s string) (low, high int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if ok {
		low, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			high, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("media: RTP port range %q is not LOW-HIGH, e.g. 20000-20999", s)
	}
	if err := checkRange(low, high); err != nil {
		return 0, 0, err
	}
	return low, high, nil
}

func checkRange(low, high int) error {
	if low < 1024 || high > 65535 || low > high {
		return fmt.Errorf("media: RTP port range %d-%d must lie within 1024-65535, low first", low, high)
	}
	if (low+1)&^1 > high {
		return fmt.Errorf("media: RTP port range %d-%d holds no even port", low, high)
	}
	return nil
}

// NewPorts returns an allocator over the even ports of low..high.
func NewPorts(low, high int) (*Ports, error) {
	if err := checkRange(low, high); err != nil {
		return nil, err
	}
	low = (low + 1) &^ 1
	return &Ports{low: low, high: high, used: map[int]bool{}, next: low}, nil
}

// Cap returns how many ports the range holds.
func (p *Ports) Cap() int { return (p.high-p.low)/2 + 1 }

// InUse returns how many ports are handed out.
func (p *Ports) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}

// Acquire reserves a free even port, or returns ErrPortsExhausted.
func (p *Ports) Acquire() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acquireLocked(nil)
}

// acquireLocked reserves the next free port not in skip.
func (p *Ports) acquireLocked(skip map[int]bool) (int, error) {
	for range p.Cap() {
		port := p.next
		p.next += 2
		if p.next > p.high {
			p.next = p.low
		}
		if !p.used[port] && !skip[port] {
			p.used[port] = true
			return port, nil
		}
	}
	return 0, ErrPortsExhausted
}

// Release returns port to the range. Releasing a port that is not handed out
// does nothing.
func (p *Ports) Release(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, port)
}

// Listen reserves a port and binds a UDP socket on ip and that port. Ports
// that another program holds are skipped (and stay free in the allocator).
// Closing the returned conn releases the port. The conn is a *PortConn,
// whose UDPConn methods avoid allocations.
func (p *Ports) Listen(ip netip.Addr) (*PortConn, error) {
	network := "udp"
	if ip.Is4() || ip.Is4In6() {
		network = "udp4"
		ip = ip.Unmap()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	busy := map[int]bool{}
	var lastErr error
	for range p.Cap() {
		port, err := p.acquireLocked(busy)
		if err != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("%w (last bind error: %v)", err, lastErr)
			}
			return nil, err
		}
		conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
		if err == nil {
			return &PortConn{UDPConn: conn, ports: p, port: port}, nil
		}
		delete(p.used, port)
		busy[port] = true
		lastErr = err
	}
	return nil, fmt.Errorf("%w (last bind error: %v)", ErrPortsExhausted, lastErr)
}

// PortConn is a UDP socket on a port of a Ports range; Close releases the
// port.
type PortConn struct {
	*net.UDPConn
	ports *Ports
	port  int
	once  sync.Once
}

// Port returns the UDP port the conn is bound to.
func (c *PortConn) Port() int { return c.port }

// Close closes the socket and returns its port to the range.
func (c *PortConn) Close() error {
	err := c.UDPConn.Close()
	c.once.Do(func() { c.ports.Release(c.port) })
	return err
}
