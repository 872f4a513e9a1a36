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

func TestWithNetdnsDebugKeepsTheMode(t *testing.T) {
	tests := []struct {
		env      []string
		defaults string
		want     string
	}{
		{nil, "", "GODEBUG=netdns=2"},
		{[]string{"GODEBUG=netdns=go"}, "", "GODEBUG=netdns=go,netdns=go+2"},
		{[]string{"GODEBUG=http2client=0"}, "", "GODEBUG=http2client=0,netdns=2"},
		{nil, "netdns=cgo", "GODEBUG=netdns=cgo+2"},
	}
	for _, tt := range tests {
		got := withNetdnsDebug(tt.env, tt.defaults)
		if got[len(got)-1] != tt.want {
			t.Errorf("%q: got %q, want %q", tt.env, got, tt.want)
		}
		if mode := netdnsMode(tt.defaults, envValue(got, "GODEBUG")); mode != netdnsMode(tt.defaults, envValue(tt.env, "GODEBUG")) {
			t.Errorf("%q: the debug setting changed the resolver mode to %q", tt.env, mode)
		}
	}
}

func TestResolverUsed(t *testing.T) {
	tests := map[string]string{
		"go package net: dynamic selection of DNS resolver\ngo package net: hostLookupOrder(kiln-verify.test) = cgo\n":       ResolverCgo,
		"go package net: dynamic selection of DNS resolver\ngo package net: hostLookupOrder(kiln-verify.test) = files,dns\n": ResolverGo,
		"go package net: using the Go DNS resolver\n":  ResolverGo,
		"go package net: using the cgo DNS resolver\n": ResolverCgo,
		"hello\n": "",
	}
	for in, want := range tests {
		if got := resolverUsed(in); got != want {
			t.Errorf("resolverUsed(%q) = %q, want %q", in, got, want)
		}
	}
}
