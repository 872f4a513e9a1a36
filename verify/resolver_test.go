package verify

import (
	"sort"
	"testing"
)

// fsOf builds an image filesystem holding files (path -> content).
func fsOf(t *testing.T, files map[string]string) *FS {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var entries []tarEnt
	for _, n := range names {
		entries = append(entries, tarFile(n[1:], files[n]))
	}
	return mustFlatten(t, Limits{}, tarLayer(t, entries...))
}

// TestPredictResolver follows src/net/conf.go of Go 1.26 case by case.
func TestPredictResolver(t *testing.T) {
	cgo := &GoInfo{CgoEnabled: true, HasFuncTable: true, UsesNet: true}
	static := &GoInfo{CgoEnabled: false, HasFuncTable: true, UsesNet: true}
	netgo := &GoInfo{CgoEnabled: true, Tags: []string{"netgo"}, HasFuncTable: true, UsesNet: true}
	netcgo := &GoInfo{CgoEnabled: true, Tags: []string{"netcgo"}, HasFuncTable: true, UsesNet: true}
	defaultGo := &GoInfo{CgoEnabled: true, DefaultDebug: "netdns=go,panicnil=1", HasFuncTable: true, UsesNet: true}
	noNet := &GoInfo{CgoEnabled: true, HasFuncTable: true}
	tests := []struct {
		name  string
		g     *GoInfo
		env   []string
		files map[string]string
		want  string
	}{
		{"CGO_ENABLED=0 ignores nsswitch", static, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files ldap dns\n"}, ResolverGo},
		{"netgo tag", netgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files ldap dns\n"}, ResolverGo},
		{"netcgo tag", netcgo, nil, nil, ResolverCgo},
		{"no net", noNet, nil, nil, ResolverNone},
		{"cgo, no nsswitch.conf (alpine)", cgo, nil, nil, ResolverGo},
		{"cgo, files dns (distroless)", cgo, nil, map[string]string{"/etc/nsswitch.conf": "passwd: files\nhosts: files dns\n"}, ResolverGo},
		{"cgo, dns files", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: dns files\n"}, ResolverGo},
		{"cgo, ldap source", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files ldap dns\n"}, ResolverCgo},
		{"cgo, myhostname is fine for other names", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files myhostname dns\n"}, ResolverGo},
		{"cgo, resolve (systemd) source", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files resolve [!UNAVAIL=return] dns\n"}, ResolverCgo},
		{"cgo, non-default criteria on dns", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files dns [NOTFOUND=return]\n"}, ResolverGo},
		{"cgo, non-default criteria on files", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files [SUCCESS=continue] dns\n"}, ResolverCgo},
		{"cgo, criteria glued to the source", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files dns[NOTFOUND=return]\n"}, ResolverCgo},
		{"cgo, mdns without mdns.allow", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files mdns4_minimal [NOTFOUND=return] dns\n"}, ResolverGo},
		{"cgo, mdns with mdns.allow", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files mdns4_minimal dns\n", "/etc/mdns.allow": ".local\n"}, ResolverCgo},
		{"cgo, only myhostname", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: myhostname\n"}, ResolverCgo},
		{"cgo, no hosts line", cgo, nil, map[string]string{"/etc/nsswitch.conf": "passwd: files\n"}, ResolverGo},
		{"cgo, a line without a colon breaks the file", cgo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files dns\nbogus\n"}, ResolverCgo},
		{"cgo, unknown resolv.conf option", cgo, nil, map[string]string{"/etc/resolv.conf": "nameserver 10.0.0.1\noptions inet6\n"}, ResolverCgo},
		{"cgo, k8s resolv.conf", cgo, nil, map[string]string{"/etc/resolv.conf": "search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"}, ResolverGo},
		{"cgo, LOCALDOMAIN set even empty", cgo, []string{"LOCALDOMAIN="}, nil, ResolverCgo},
		{"cgo, RES_OPTIONS", cgo, []string{"RES_OPTIONS=ndots:2"}, nil, ResolverCgo},
		{"cgo, empty RES_OPTIONS does nothing", cgo, []string{"RES_OPTIONS="}, nil, ResolverGo},
		{"GODEBUG netdns=cgo in the image", cgo, []string{"GODEBUG=netdns=cgo+1"}, nil, ResolverCgo},
		{"GODEBUG netdns=go beats ldap", cgo, []string{"GODEBUG=netdns=go"}, map[string]string{"/etc/nsswitch.conf": "hosts: files ldap dns\n"}, ResolverGo},
		{"compiled-in netdns=go", defaultGo, nil, map[string]string{"/etc/nsswitch.conf": "hosts: files ldap dns\n"}, ResolverGo},
		{"the environment beats the compiled-in default", defaultGo, []string{"GODEBUG=netdns=cgo"}, nil, ResolverCgo},
		{"netdns=2 alone keeps the default", defaultGo, []string{"GODEBUG=netdns=2"}, map[string]string{"/etc/nsswitch.conf": "hosts: files ldap dns\n"}, ResolverCgo},
		{"netdns=cgo on a CGO_ENABLED=0 binary is ignored", static, []string{"GODEBUG=netdns=cgo"}, nil, ResolverGo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PredictResolver(tt.g, tt.env, fsOf(t, tt.files))
			if p.Resolver != tt.want {
				t.Errorf("predicted %s (%s), want %s", p.Resolver, p.Reason, tt.want)
			}
			if p.Reason == "" {
				t.Error("no reason given")
			}
		})
	}
}

// GODEBUG is read as internal/godebug reads it (go1.21–go1.26).
func TestGodebugValue(t *testing.T) {
	tests := []struct {
		defaults, env, want string
		set                 bool
	}{
		{"", "netdns=go", "go", true},
		{"netdns=cgo", "", "cgo", true},
		{"netdns=cgo", "netdns=go", "go", true},
		{"netdns=cgo", "netdns=", "", true},          // the environment sets it, to nothing
		{"netdns=cgo", "http2client=0", "cgo", true}, // another key does not hide the default
		{"", "netdns=go,netdns=cgo", "cgo", true},    // the last one wins
		{"", " netdns=go", "", false},                // " netdns" is another key
		{"", "netdns=go ", "go ", true},              // and the value keeps its space
		{"", "netdns=cgo#0101", "cgo", true},         // a bisect pattern follows '#'
		{"", "netdns=go=1", "go=1", true},
		{"", "netdns", "", false},
		{"", "netdns=go,,", "go", true},
	}
	for _, tt := range tests {
		got, set := godebugValue(tt.defaults, tt.env, "netdns")
		if got != tt.want || set != tt.set {
			t.Errorf("godebugValue(%q, %q) = %q, %v; want %q, %v", tt.defaults, tt.env, got, set, tt.want, tt.set)
		}
	}
	modes := map[string]string{"go": "go", "cgo+1": "cgo", "1+cgo": "cgo", "go+cgo": "cgo", "2": "", "go ": "", "go+cgo+1": "", "": ""}
	for v, want := range modes {
		if got := netdnsMode(v); got != want {
			t.Errorf("netdnsMode(%q) = %q, want %q", v, got, want)
		}
	}
}

// The sandbox's resolv.conf points at verify's DNS server and leaves
// every byte that decides the resolver as it was.
func TestLoopbackNameservers(t *testing.T) {
	in := "# corp\nnameserver 10.0.0.1\nnameserver\t10.0.0.2 # second\n  nameserver 10.0.0.3\nnameservers 1.1.1.1\noptions ndots:2 # x\nnameserver\n"
	want := "# corp\nnameserver 127.0.0.1\nnameserver\t127.0.0.1 # second\n  nameserver 127.0.0.1\nnameservers 1.1.1.1\noptions ndots:2 # x\nnameserver\n"
	if got := string(loopbackNameservers([]byte(in))); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// Which resolver sent a query, from what verify's DNS server saw
// (TestDNSFingerprint measures the features for each Go release and libc).
func TestClassifyQueries(t *testing.T) {
	tests := []struct {
		qs   []dnsQuery
		want string
	}{
		{nil, ""},
		{[]dnsQuery{{Type: "A", Port: 1000, EDNS: 1232}, {Type: "AAAA", Port: 1001, EDNS: 1232}}, ResolverGo},
		{[]dnsQuery{{Type: "A", Port: 1000}, {Type: "AAAA", Port: 1000}}, ResolverCgo},
		{[]dnsQuery{{Type: "A", Port: 1000, EDNS: 1200, AD: true}}, ResolverCgo},
	}
	for _, tt := range tests {
		if got, why := classifyQueries(tt.qs); got != tt.want || why == "" {
			t.Errorf("classifyQueries(%+v) = %q (%s), want %q", tt.qs, got, why, tt.want)
		}
	}
}
