package looper_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/looper-ml/looper/clients/go/looper"
	looperv1 "github.com/looper-ml/looper/clients/go/looperpb/v1"
)

func TestEveryAttemptCarriesTheBearerToken(t *testing.T) {
	f := &fakeServer{unavailable: 1}
	client := start(t, f, looper.WithToken("lpr_secret"))
	if _, err := client.Decide(context.Background(), looper.DecideRequest{UseCase: "u", DecisionID: "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.LogFeedback(context.Background(), looper.Outcome{UseCase: "u", DecisionID: "d", Outcome: "clicked"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"Bearer lpr_secret", "Bearer lpr_secret", "Bearer lpr_secret"}; strings.Join(f.authz, "|") != strings.Join(want, "|") {
		t.Fatalf("authorization per attempt = %q, want %q", f.authz, want)
	}
}

func TestTheTokenFallsBackToLOOPER_TOKEN(t *testing.T) {
	t.Setenv("LOOPER_TOKEN", "lpr_from_env\n")
	f := &fakeServer{}
	fromEnv := start(t, f)
	withOption := start(t, f, looper.WithToken("lpr_from_option"))
	for _, client := range []*looper.Client{fromEnv, withOption} {
		if _, err := client.Decide(context.Background(), looper.DecideRequest{UseCase: "u", DecisionID: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(f.authz, "|"); got != "Bearer lpr_from_env|Bearer lpr_from_option" {
		t.Fatalf("authorization = %q, want the environment's token, then the option's", got)
	}
}

func TestWithoutATokenNoAuthorizationIsSent(t *testing.T) {
	t.Setenv("LOOPER_TOKEN", "")
	f := &fakeServer{}
	client := start(t, f)
	if _, err := client.Decide(context.Background(), looper.DecideRequest{UseCase: "u", DecisionID: "d"}); err != nil {
		t.Fatal(err)
	}
	if f.authz[0] != "" {
		t.Fatalf("authorization = %q, want none", f.authz[0])
	}
}

func TestRefusesToSendATokenInTheClearToAnotherHost(t *testing.T) {
	t.Setenv("LOOPER_TOKEN", "")
	local := []looper.Option{looper.WithDecisionAddr("127.0.0.1:50051"), looper.WithFeedbackAddr("localhost:50052"),
		looper.WithTrainerAddr("[::1]:50053")}
	for name, opts := range map[string][]looper.Option{
		"a remote decision address": {looper.WithDecisionAddr("10.1.2.3:50051")},
		"a remote feedback address": {looper.WithFeedbackAddr("looper.example.com:50052")},
		"a remote trainer address":  {looper.WithTrainerAddr("192.168.0.9:50053")},
	} {
		_, err := looper.New(append(opts, looper.WithToken("lpr_secret"))...)
		if err == nil || !strings.Contains(err.Error(), "refusing to send a bearer token without TLS") {
			t.Errorf("%s: New = %v, want a refusal", name, err)
		}
		// With TLS, or without a token, the same addresses are fine.
		for _, extra := range [][]looper.Option{{looper.WithToken("lpr_secret"), looper.WithTLS(nil)}, nil} {
			client, err := looper.New(append(opts, extra...)...)
			if err != nil {
				t.Errorf("%s with %d more options: %v", name, len(extra), err)
				continue
			}
			_ = client.Close()
		}
	}
	// The environment's token is refused the same way.
	t.Setenv("LOOPER_TOKEN", "lpr_from_env")
	if _, err := looper.New(looper.WithDecisionAddr("10.1.2.3:50051")); err == nil {
		t.Error("New sent LOOPER_TOKEN in the clear to 10.1.2.3")
	}
	client, err := looper.New(local...)
	if err != nil {
		t.Fatalf("loopback addresses without TLS: %v", err)
	}
	_ = client.Close()
}

// certificate is a certificate for 127.0.0.1 signed by ca (self-signed when ca is nil).
func certificate(t *testing.T, subject string, ca *tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: subject},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        ca == nil, BasicConstraintsValid: true,
	}
	parent, signer := template, any(key)
	if ca != nil {
		parent, signer = ca.Leaf, ca.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// Under mutual TLS the client certificate (WithTLS) reaches the server, and so does a token.
func TestMutualTLSCarriesTheClientCertificateAndTheToken(t *testing.T) {
	t.Setenv("LOOPER_TOKEN", "")
	ca := certificate(t, "looper-test-ca", nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	serverCert, clientCert := certificate(t, "127.0.0.1", &ca), certificate(t, "checkout-backend", &ca)

	var subjects []string
	f := &fakeServer{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert},
		ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			p, _ := peer.FromContext(ctx)
			info := p.AuthInfo.(credentials.TLSInfo)
			subjects = append(subjects, info.State.PeerCertificates[0].Subject.CommonName)
			return next(ctx, req)
		}))
	looperv1.RegisterDecisionServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()

	for _, token := range []string{"", "lpr_secret"} {
		client, err := looper.New(looper.WithDecisionAddr(addr), looper.WithToken(token),
			looper.WithTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.Decide(context.Background(), looper.DecideRequest{UseCase: "u", DecisionID: "d"})
		_ = client.Close()
		if err != nil {
			t.Fatalf("Decide over mutual TLS: %v", err)
		}
	}
	if got := strings.Join(subjects, "|"); got != "checkout-backend|checkout-backend" {
		t.Fatalf("client certificate subjects = %q", got)
	}
	if got := strings.Join(f.authz, "|"); got != "|Bearer lpr_secret" {
		t.Fatalf("authorization = %q, want none, then the token", got)
	}
}
