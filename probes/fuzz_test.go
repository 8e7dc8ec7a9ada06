package probes

import (
	"net"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// Peer data reaches these parsers; none may panic, and what they return
// must be what the input said.

func FuzzCheckJSON(f *testing.F) {
	f.Add([]byte(`{"status":"ok","data":{"role":"primary"}}`), "data.role", "primary")
	f.Add([]byte(`{"a":[1,2,{"b":null}]}`), "a.b", "")
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`), "x", "y")
	f.Add([]byte(`{"":{"":{"":1}}}`), "..", "1")
	f.Fuzz(func(t *testing.T, body []byte, path, want string) {
		err := checkJSON(body, map[string]string{path: want})
		if err == nil && !strings.Contains(string(body), strings.Split(path, ".")[0]) {
			t.Fatalf("field %q matched in a body that does not name it", path)
		}
	})
}

func FuzzRedisInfo(f *testing.F) {
	f.Add("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n", "role")
	f.Add("role:slave\nrole:master", "role")
	f.Add("\x00role:\x1b[31m\r\n", "role")
	f.Fuzz(func(t *testing.T, info, key string) {
		if v := infoField(info, key); v != "" && !strings.Contains(info, v) {
			t.Fatalf("infoField returned %q, which is not in the reply", v)
		}
	})
}

// FuzzRESPFrames feeds a byte stream, in two chunks, through the RESP
// framing check: it must never panic, and what it lets through may not
// announce more than the budget.
func FuzzRESPFrames(f *testing.F) {
	f.Add([]byte("*2\r\n$9223372036854775807\r\n"), 3)
	f.Add([]byte("+PONG\r\n$5\r\nhello\r\n*1\r\n:1\r\n"), 5)
	f.Add([]byte("%2\r\n+a\r\n:1\r\n+b\r\n_\r\n"), 1)
	f.Add([]byte("$-1\r\n*-1\r\n$0\r\n\r\n"), 0)
	f.Add([]byte(strings.Repeat("*1\r\n", 40)+":1\r\n"), 7)
	f.Add([]byte("*3\r\n*2\r\n:1\r\n:2\r\n*1\r\n:3\r\n:4\r\n+OK\r\n"), 9)
	f.Fuzz(func(t *testing.T, stream []byte, cut int) {
		s := &scope{limit: 4096, abort: func(error) {}}
		fr := &respFrames{s: s}
		cut = min(max(cut, 0), len(stream))
		for _, part := range [][]byte{stream[:cut], stream[cut:]} {
			s.read.Add(int64(len(part)))
			if err := fr.scan(part); err != nil {
				if s.overLimit() == nil && !strings.Contains(err.Error(), "malformed") {
					t.Fatalf("refused without naming why: %v", err)
				}
				return
			}
		}
		if fr.skip > s.limit+2 || fr.owed()*minRESPElem > s.limit*2 {
			t.Fatalf("let through skip %d, %d elements owed on a budget of %d", fr.skip, fr.owed(), s.limit)
		}
		if len(fr.open) > maxRESPDepth || fr.announced > maxRESPElements {
			t.Fatalf("let through a reply %d deep with %d elements", len(fr.open), fr.announced)
		}
	})
}

// FuzzDNSAnswer unpacks any message and walks its answer section.
func FuzzDNSAnswer(f *testing.F) {
	for _, rrs := range [][]dns.RR{
		{&dns.A{Hdr: dns.RR_Header{Name: "api.example.test.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 1)}},
		{&dns.CNAME{Hdr: dns.RR_Header{Name: "api.example.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "x.example.test."},
			&dns.CNAME{Hdr: dns.RR_Header{Name: "x.example.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "api.example.test."}},
	} {
		m := new(dns.Msg)
		m.SetQuestion("api.example.test.", dns.TypeA)
		m.Answer = rrs
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if m.Unpack(b) != nil {
			return
		}
		addrs, _ := answerAddrs(m, "api.example.test")
		for _, a := range addrs {
			if net.ParseIP(a) == nil {
				t.Fatalf("address %q is not an IP", a)
			}
		}
	})
}

// FuzzRedact: a secret of the accepted length never survives, and the
// cleaned text is short, valid and printable.
func FuzzRedact(f *testing.F) {
	f.Add("postgres://u:Sup3r-Secret@db:5432 password=Sup3r-Secret", "Sup3r-Secret")
	f.Add("redis://:p@ss@host:6379", "p@ss-word-1")
	f.Add("\x1b[31mERR\x1b[0m token=abc", "abcdefgh")
	f.Fuzz(func(t *testing.T, msg, secret string) {
		if strings.ContainsRune(secret, 0) {
			return // no environment variable can hold it
		}
		t.Setenv("HOPPROBE_FUZZ_SECRET", secret)
		tg := &hop.Target{Store: storeWithSecret("HOPPROBE_FUZZ_SECRET")}
		out := Redact(msg, tg)
		alnum := strings.IndexFunc(secret, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) < 0
		if len(secret) >= 8 && alnum && !strings.Contains("[REDACTED]", secret) && strings.Contains(out, secret) {
			t.Fatalf("secret %q survived in %q", secret, out)
		}
		for _, c := range []string{hop.Clean(out, hop.MaxReasonBytes), hop.Bound(msg, 64)} {
			if len(c) > hop.MaxReasonBytes || !utf8.ValidString(c) || strings.IndexFunc(c, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 {
				t.Fatalf("Clean or Bound left %q", c)
			}
		}
		if b := hop.Bound(msg, 64); len(b) > 64 {
			t.Fatalf("Bound(%q, 64) is %d bytes", msg, len(b))
		}
	})
}

func storeWithSecret(env string) *config.Store {
	return &config.Store{Name: "db", Password: &config.SecretRef{Env: env}}
}
