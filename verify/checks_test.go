package verify

import (
	"testing"

	"github.com/kilnbuild/kiln/targets"
)

// files.certs through a certificate directory: Go reads every file there,
// so the directory must hold a certificate, not just any file.
func TestCertsDirectory(t *testing.T) {
	const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	tests := []struct {
		name    string
		entries []tarEnt
		want    Status
	}{
		{"bundle file", []tarEnt{tarFile("etc/ssl/cert.pem", pem)}, Pass},
		{"hashed certs in a dir", []tarEnt{tarFile("etc/ssl/certs/5ad8a5d6.0", pem)}, Pass},
		{"dir behind a symlink", []tarEnt{tarFile("usr/share/certs/a.pem", pem), tarSymlink("etc/pki/tls/certs", "/usr/share/certs")}, Pass},
		{"a dir without certificates", []tarEnt{tarFile("etc/ssl/certs/README", "no certificates here\n")}, Fail},
		{"nothing", []tarEnt{tarFile("etc/hostname", "x\n")}, Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &subject{fsys: mustFlatten(t, Limits{}, tarLayer(t, tt.entries...)),
				in: Input{Policy: targets.Policy{Require: []string{"certs"}}}}
			rep := &Report{}
			s.checkCerts(rep)
			if f, _ := rep.Find("files.certs"); f.Status != tt.want {
				t.Errorf("files.certs = %+v, want %s", f, tt.want)
			}
		})
	}
}
