package verify

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// ProbeName is the name run.resolver asks the binary to resolve; verify's
// own DNS server, inside the sandbox's network namespace, answers it.
const ProbeName = "kiln-verify.test"

// ProbeAddr is the address the server answers for ProbeName.
var ProbeAddr = [4]byte{127, 0, 0, 1}

// dnsServer answers A queries for ProbeName on loopback (UDP and TCP),
// counts what it was asked and keeps what the first queries for
// ProbeName looked like: that tells which resolver sent them. Everything
// else gets NXDOMAIN.
type dnsServer struct {
	queries  atomic.Int64 // questions for ProbeName
	answered atomic.Int64
	udp      net.PacketConn
	tcp      net.Listener
	wg       sync.WaitGroup

	mu   sync.Mutex
	seen []dnsQuery // the first maxSeen queries for ProbeName
}

// maxSeen bounds the queries the server keeps (a dns_load run makes
// thousands).
const maxSeen = 32

// dnsQuery is what the server saw of one query for ProbeName: enough to
// tell Go's resolver from libc's (see classifyQueries).
type dnsQuery struct {
	TCP  bool   `json:"tcp,omitempty"`
	Port int    `json:"port"` // the client's source port
	Type string `json:"type"` // "A", "AAAA", …
	// EDNS is the UDP payload size of the query's OPT record, 0 when it
	// has none.
	EDNS int  `json:"edns,omitempty"`
	AD   bool `json:"ad,omitempty"`
}

func startDNS(addr string) (*dnsServer, error) {
	s := &dnsServer{}
	var err error
	if s.udp, err = net.ListenPacket("udp", addr); err != nil {
		return nil, err
	}
	if s.tcp, err = net.Listen("tcp", addr); err != nil {
		s.udp.Close()
		return nil, err
	}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	return s, nil
}

func (s *dnsServer) close() {
	s.udp.Close()
	s.tcp.Close()
	s.wg.Wait()
}

func (s *dnsServer) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		port := 0
		if a, ok := from.(*net.UDPAddr); ok {
			port = a.Port
		}
		if resp := s.answer(buf[:n], false, port); resp != nil {
			_, _ = s.udp.WriteTo(resp, from)
		}
	}
}

func (s *dnsServer) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		port := 0
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			port = a.Port
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			var l [2]byte
			for {
				if _, err := readFull(c, l[:]); err != nil {
					return
				}
				msg := make([]byte, int(l[0])<<8|int(l[1]))
				if _, err := readFull(c, msg); err != nil {
					return
				}
				resp := s.answer(msg, true, port)
				if resp == nil {
					return
				}
				if _, err := c.Write(append([]byte{byte(len(resp) >> 8), byte(len(resp))}, resp...)); err != nil {
					return
				}
			}
		}()
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// answer builds the response to one query, or nil for garbage.
func (s *dnsServer) answer(query []byte, tcp bool, port int) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	rcode := dnsmessage.RCodeNameError
	probe := strings.EqualFold(strings.TrimSuffix(q.Name.String(), "."), ProbeName)
	if probe {
		s.queries.Add(1)
		rcode = dnsmessage.RCodeSuccess
		s.record(dnsQuery{TCP: tcp, Port: port, Type: strings.TrimPrefix(q.Type.String(), "Type"), EDNS: ednsSize(&p), AD: h.AuthenticData})
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: rcode})
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil
	}
	if probe && q.Type == dnsmessage.TypeA {
		if b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: ProbeAddr}) != nil {
			return nil
		}
		s.answered.Add(1)
	}
	resp, err := b.Finish()
	if err != nil {
		return nil
	}
	return resp
}

// observed returns the queries kept so far.
func (s *dnsServer) observed() []dnsQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]dnsQuery(nil), s.seen...)
}

func (s *dnsServer) record(q dnsQuery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) < maxSeen {
		s.seen = append(s.seen, q)
	}
}

// ednsSize returns the UDP payload size of the query's OPT record (its
// class field), 0 when there is none; p is past the question.
func ednsSize(p *dnsmessage.Parser) int {
	if p.SkipAllQuestions() != nil || p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return 0
	}
	for {
		h, err := p.AdditionalHeader()
		if err != nil {
			return 0
		}
		if h.Type == dnsmessage.TypeOPT {
			return int(h.Class)
		}
		if p.SkipAdditional() != nil {
			return 0
		}
	}
}

// goEDNSSize is the UDP payload size Go's resolver puts in the OPT record
// of every query (net/dnsclient_unix.go, maxDNSPacketSize, go1.21–go1.26).
// glibc sends no OPT record, or one of 1200 bytes with "options edns0";
// musl never sends one. Measured by TestDNSFingerprint for each.
const goEDNSSize = 1232

// classifyQueries tells which resolver sent the queries verify's DNS
// server saw: "go", "cgo" (libc's), or "" when there were none.
func classifyQueries(qs []dnsQuery) (string, string) {
	if len(qs) == 0 {
		return "", "no query reached verify's DNS server"
	}
	// The evidence names no query type or count: Go sends A and AAAA at
	// once, and which arrives first varies.
	for _, q := range qs {
		if q.EDNS == goEDNSSize {
			return ResolverGo, fmt.Sprintf("its queries carried an EDNS0 OPT record of %d bytes, as Go's resolver sends", goEDNSSize)
		}
	}
	if q := qs[0]; q.EDNS != 0 {
		return ResolverCgo, fmt.Sprintf("its queries carried an EDNS0 OPT record of %d bytes, not Go's %d: libc's resolver", q.EDNS, goEDNSSize)
	}
	return ResolverCgo, "its queries carried no EDNS0 OPT record, which Go's resolver always sends: libc's resolver"
}
