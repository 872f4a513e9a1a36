package build

import (
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// DefaultRegistryTimeout is how long a registry may take to start answering
// one request (Options.RegistryTimeout).
const DefaultRegistryTimeout = 2 * time.Minute

// RegistryOptions are the options of every registry conversation kiln has:
// credentials from keychain, and go-containerregistry's transport with a
// limit on how long a registry may take to start answering. Without it a
// registry that accepts connections and never answers hangs a release until
// the CI job's own timeout. Uploads are not limited, only the wait for the
// response after one. A zero timeout means DefaultRegistryTimeout.
func RegistryOptions(keychain authn.Keychain, timeout time.Duration) []remote.Option {
	if keychain == nil {
		keychain = authn.DefaultKeychain
	}
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = timeout
	if timeout <= 0 {
		t.ResponseHeaderTimeout = DefaultRegistryTimeout
	}
	return []remote.Option{remote.WithAuthFromKeychain(keychain), remote.WithTransport(t)}
}
