// Package looper is the Go client of Looper: Decide at a decision point, LogFeedback when
// you learn what happened.
//
// A Client holds one reusable gRPC connection per service and is safe for concurrent use;
// create it once. Every call gets a default deadline unless its context already has one,
// retries UNAVAILABLE with exponential backoff (safe: each call carries an idempotency id,
// decision_id or event_id, fixed before the first attempt), propagates the caller's
// OpenTelemetry trace as a W3C traceparent, carries the bearer token (WithToken, or the
// LOOPER_TOKEN environment variable), and returns *Error, which carries the server's field
// violations and, when a service cannot be reached, names it and its address.
package looper

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	looperv1 "github.com/looper-ml/looper/clients/go/looperpb/v1"
)

// DefaultTimeout is the deadline of a call whose context has none.
const DefaultTimeout = 5 * time.Second

// DefaultMaxAttempts is how many times a call is tried when the service is UNAVAILABLE.
const DefaultMaxAttempts = 4

type config struct {
	decisionAddr, feedbackAddr, trainerAddr string
	timeout                                 time.Duration
	maxAttempts                             int
	token                                   string
	creds                                   credentials.TransportCredentials
	propagator                              propagation.TextMapPropagator
	dialOptions                             []grpc.DialOption
}

// Option configures a Client.
type Option func(*config)

// WithDecisionAddr sets the DecisionService address (host:port); default 127.0.0.1:50051.
func WithDecisionAddr(addr string) Option { return func(c *config) { c.decisionAddr = addr } }

// WithFeedbackAddr sets the FeedbackService address; default 127.0.0.1:50052.
func WithFeedbackAddr(addr string) Option { return func(c *config) { c.feedbackAddr = addr } }

// WithTrainerAddr sets the TrainerService address; default 127.0.0.1:50053.
func WithTrainerAddr(addr string) Option { return func(c *config) { c.trainerAddr = addr } }

// WithTimeout sets the deadline of calls whose context has none.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMaxAttempts sets how many attempts a call gets on UNAVAILABLE (1 disables retries).
// The waits between attempts grow from 50ms to 1s (see RetryServiceConfig) and no attempt
// outlives the call's deadline, so n is the retry budget: the default 4 rides out a blip
// of well under a second; riding out a service restart, which takes seconds, needs more
// attempts and a deadline to match (e.g. 30 attempts and a 30s timeout).
func WithMaxAttempts(n int) Option { return func(c *config) { c.maxAttempts = n } }

// WithTLS connects over TLS; a nil config uses the system roots. For mutual TLS, put the
// client certificate in the config's Certificates: its subject is then the credential.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c.creds = credentials.NewTLS(cfg)
	}
}

// WithTransportCredentials sets any transport credentials (e.g. mTLS or ALTS).
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(c *config) { c.creds = creds }
}

// WithPropagator replaces the trace propagator (default: W3C traceparent and baggage).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.propagator = p }
}

// WithDialOptions adds gRPC dial options, e.g. extra interceptors.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOptions = append(c.dialOptions, opts...) }
}

// Client calls the Looper services. It is safe for concurrent use.
type Client struct {
	cfg      config
	conns    []*grpc.ClientConn
	Decision looperv1.DecisionServiceClient
	Feedback looperv1.FeedbackServiceClient
	Trainer  looperv1.TrainerServiceClient
	Access   looperv1.AccessServiceClient // hosted beside the Trainer, at its address
}

// New creates a Client. Connections are made lazily, on the first call. It fails when a
// bearer token would go to an address that is not loopback without TLS.
func New(opts ...Option) (*Client, error) {
	cfg := config{
		decisionAddr: "127.0.0.1:50051", feedbackAddr: "127.0.0.1:50052", trainerAddr: "127.0.0.1:50053",
		timeout: DefaultTimeout, maxAttempts: DefaultMaxAttempts, creds: insecure.NewCredentials(),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.maxAttempts < 1 {
		return nil, fmt.Errorf("looper: max attempts must be at least 1, got %d", cfg.maxAttempts)
	}
	token := resolveToken(cfg.token)
	dial := []grpc.DialOption{}
	if token != "" {
		if err := checkTokenTransport(cfg.creds, cfg.decisionAddr, cfg.feedbackAddr, cfg.trainerAddr); err != nil {
			return nil, err
		}
		dial = append(dial, grpc.WithPerRPCCredentials(bearerToken{header: "Bearer " + token}))
	}
	dial = append(append(dial,
		grpc.WithTransportCredentials(cfg.creds),
		grpc.WithDefaultServiceConfig(RetryServiceConfig(cfg.maxAttempts)),
		// gRPC caps a retry policy at 5 attempts unless the channel allows more.
		grpc.WithMaxCallAttempts(cfg.maxAttempts),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithPropagators(cfg.propagator))),
	), cfg.dialOptions...)
	c := &Client{cfg: cfg}
	for _, addr := range []string{cfg.decisionAddr, cfg.feedbackAddr, cfg.trainerAddr} {
		conn, err := grpc.NewClient(addr, dial...)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("looper: connecting to %s: %w", addr, err)
		}
		c.conns = append(c.conns, conn)
	}
	c.Decision = looperv1.NewDecisionServiceClient(c.conns[0])
	c.Feedback = looperv1.NewFeedbackServiceClient(c.conns[1])
	c.Trainer = looperv1.NewTrainerServiceClient(c.conns[2])
	c.Access = looperv1.NewAccessServiceClient(c.conns[2])
	return c, nil
}

// Close closes the connections.
func (c *Client) Close() error {
	var first error
	for _, conn := range c.conns {
		if err := conn.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// RetryServiceConfig is gRPC's retry policy for the Looper services: UNAVAILABLE is retried
// with exponential backoff (50ms, doubling, at most 1s).
func RetryServiceConfig(maxAttempts int) string {
	names := []map[string]string{}
	for _, s := range []string{"DecisionService", "FeedbackService", "TrainerService"} {
		names = append(names, map[string]string{"service": "looper.v1." + s})
	}
	method := map[string]any{"name": names}
	if maxAttempts > 1 { // gRPC requires at least 2 attempts in a retry policy
		method["retryPolicy"] = map[string]any{
			"maxAttempts": maxAttempts, "initialBackoff": "0.05s", "maxBackoff": "1s",
			"backoffMultiplier": 2, "retryableStatusCodes": []string{"UNAVAILABLE"},
		}
	}
	cfg := map[string]any{"methodConfig": []any{method}}
	out, _ := json.Marshal(cfg)
	return string(out)
}

// The services, as errors name them.
const (
	decisionService = "Decision"
	feedbackService = "Feedback"
	trainerService  = "Trainer"
)

// fail maps a failed call of a service to *Error, naming the service and its address.
func (c *Client) fail(service string, err error) error {
	if err == nil {
		return nil
	}
	addr := c.cfg.trainerAddr
	switch service {
	case decisionService:
		addr = c.cfg.decisionAddr
	case feedbackService:
		addr = c.cfg.feedbackAddr
	}
	return fromRPC(err, service, addr)
}

// withDeadline gives ctx the client's default deadline unless it already has one.
func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.timeout)
}
