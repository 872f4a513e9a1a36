package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/targets"
)

// testCert is a PEM self-signed certificate, made once per test binary.
func testCert(t testing.TB, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// files.certs as crypto/x509 reads the roots: the first readable file of
// the list ends the file search even without a certificate, directories
// are read whole, and only certificates that parse count. The
// differential test (roots_diff_test.go) holds the rules to crypto/x509
// itself; this is the check's wiring.
func TestCertsCheck(t *testing.T) {
	cert := testCert(t, "kiln test root")
	tests := []struct {
		name    string
		entries []tarEnt
		env     []string
		want    Status
	}{
		{"bundle file", []tarEnt{tarFile("etc/ssl/cert.pem", cert)}, nil, Pass},
		{"hashed certs in a dir", []tarEnt{tarFile("etc/ssl/certs/5ad8a5d6.0", cert)}, nil, Pass},
		{"dir behind a symlink", []tarEnt{tarFile("usr/share/certs/a.pem", cert), tarSymlink("etc/pki/tls/certs", "/usr/share/certs")}, nil, Pass},
		{"a dir without certificates", []tarEnt{tarFile("etc/ssl/certs/README", "no certificates here\n")}, nil, Fail},
		{"garbage between PEM markers", []tarEnt{tarFile("etc/ssl/cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")}, nil, Fail},
		{"an empty first file hides a later one", []tarEnt{tarFile("etc/pki/tls/certs/ca-bundle.crt", ""), tarFile("etc/ssl/cert.pem", cert)}, nil, Fail},
		{"only a same-dir symlink in the dir", []tarEnt{tarFile("etc/ssl/certs/a.pem", ""), tarSymlink("etc/ssl/certs/b.0", "a.pem")}, nil, Fail},
		{"SSL_CERT_FILE replaces the list", []tarEnt{tarFile("etc/ssl/cert.pem", cert)}, []string{"SSL_CERT_FILE=/nowhere"}, Fail},
		{"SSL_CERT_DIR", []tarEnt{tarFile("opt/certs/x.pem", cert)}, []string{"SSL_CERT_DIR=/nowhere:/opt/certs"}, Pass},
		{"nothing", []tarEnt{tarFile("etc/hostname", "x\n")}, nil, Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := mustFlatten(t, Limits{}, tarLayer(t, tt.entries...))
			s := &subject{fsys: fsys, proc: newProc(fsys, tt.env),
				in: Input{Policy: targets.Policy{Require: []string{"certs"}}}}
			rep := &Report{}
			s.checkCerts(rep)
			if f, _ := rep.Find("files.certs"); f.Status != tt.want {
				t.Errorf("files.certs = %+v, want %s", f, tt.want)
			}
		})
	}
}
