package looper

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
)

// TokenEnv is the environment variable a Client takes its bearer token from when it is
// given none (WithToken).
const TokenEnv = "LOOPER_TOKEN"

// WithToken sets the bearer token every call carries as "authorization: Bearer <token>".
// Without it (or with an empty token) the client uses the LOOPER_TOKEN environment variable,
// and sends no token when that is empty too. Without TLS (WithTLS, WithTransportCredentials)
// New refuses to send a token to an address that is not loopback: it would cross the
// network in the clear. Under mutual TLS the client certificate is the credential and no
// token is needed.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// resolveToken is the token to send: the option's, else LOOPER_TOKEN's ("" for none).
func resolveToken(token string) string {
	if token = strings.TrimSpace(token); token != "" {
		return token
	}
	return strings.TrimSpace(os.Getenv(TokenEnv))
}

// checkTokenTransport refuses a token that would travel in the clear to another host.
func checkTokenTransport(creds credentials.TransportCredentials, addrs ...string) error {
	if creds.Info().SecurityProtocol != "insecure" {
		return nil
	}
	for _, addr := range addrs {
		if !isLoopback(addr) {
			return fmt.Errorf("looper: refusing to send a bearer token without TLS to %s: use WithTLS "+
				"(or WithTransportCredentials) for a service that is not on this host", addr)
		}
	}
	return nil
}

// isLoopback reports whether a host:port target names this host: localhost or a loopback
// IP address. Anything else, names that would need resolving included, is not.
func isLoopback(target string) bool {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// bearerToken adds the token to the metadata of every call.
type bearerToken struct{ header string }

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": b.header}, nil
}

// RequireTransportSecurity is false so that a token reaches a service on loopback without
// TLS; New has already refused one bound for any other host in the clear.
func (bearerToken) RequireTransportSecurity() bool { return false }
