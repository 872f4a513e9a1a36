package verify

import (
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

// dnsServer answers A queries for ProbeName on loopback (UDP and TCP) and
// counts what it was asked. Everything else gets NXDOMAIN.
type dnsServer struct {
	queries  atomic.Int64 // questions for ProbeName
	answered atomic.Int64
	udp      net.PacketConn
	tcp      net.Listener
	wg       sync.WaitGroup
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
		if resp := s.answer(buf[:n]); resp != nil {
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
				resp := s.answer(msg)
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
func (s *dnsServer) answer(query []byte) []byte {
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
