package looper_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/looper-ml/looper/clients/go/looper"
	looperv1 "github.com/looper-ml/looper/clients/go/looperpb/v1"
)

// fakeServer is an in-process stand-in for the Looper services that records what it saw.
type fakeServer struct {
	looperv1.UnimplementedDecisionServiceServer
	looperv1.UnimplementedFeedbackServiceServer

	mu           sync.Mutex
	unavailable  int // fail this many calls with UNAVAILABLE first
	eventIDs     []string
	traceparents []string
	authz        []string // the authorization header of each attempt
	deadlines    []time.Duration
	block        time.Duration
}

func (f *fakeServer) record(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	md, _ := metadata.FromIncomingContext(ctx)
	f.traceparents = append(f.traceparents, strings.Join(md.Get("traceparent"), ","))
	f.authz = append(f.authz, strings.Join(md.Get("authorization"), ","))
	if dl, ok := ctx.Deadline(); ok {
		f.deadlines = append(f.deadlines, time.Until(dl))
	}
	if f.unavailable > 0 {
		f.unavailable--
		return status.Error(codes.Unavailable, "try again")
	}
	return nil
}

func (f *fakeServer) Decide(ctx context.Context, req *looperv1.DecideRequest) (*looperv1.DecideResponse, error) {
	if err := f.record(ctx); err != nil {
		return nil, err
	}
	if req.GetDecisionId() == "" {
		st, _ := status.New(codes.InvalidArgument, "decision_id: is required").WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "decision_id", Description: "is required"}},
		})
		return nil, st.Err()
	}
	select {
	case <-time.After(f.block):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &looperv1.DecideResponse{Decision: &looperv1.Decision{DecisionId: req.GetDecisionId(), Action: "true"}}, nil
}

func (f *fakeServer) LogFeedback(ctx context.Context, req *looperv1.LogFeedbackRequest) (*looperv1.LogFeedbackResponse, error) {
	f.mu.Lock()
	f.eventIDs = append(f.eventIDs, req.GetEvent().GetEventId())
	f.mu.Unlock()
	if err := f.record(ctx); err != nil {
		return nil, err
	}
	return &looperv1.LogFeedbackResponse{Status: looperv1.FeedbackStatus_FEEDBACK_STATUS_ACCEPTED}, nil
}

func start(t *testing.T, f *fakeServer, opts ...looper.Option) *looper.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	looperv1.RegisterDecisionServiceServer(srv, f)
	looperv1.RegisterFeedbackServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()
	client, err := looper.New(append([]looper.Option{looper.WithDecisionAddr(addr), looper.WithFeedbackAddr(addr),
		looper.WithTrainerAddr(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestRetriesUnavailableWithTheSameEventID(t *testing.T) {
	f := &fakeServer{unavailable: 2}
	client := start(t, f)
	accepted, err := client.LogFeedback(context.Background(), looper.Outcome{UseCase: "u", DecisionID: "d", Outcome: "clicked", Value: 1})
	if err != nil || !accepted {
		t.Fatalf("LogFeedback = %v, %v; want accepted after retries", accepted, err)
	}
	if len(f.eventIDs) != 3 {
		t.Fatalf("server saw %d attempts, want 3", len(f.eventIDs))
	}
	if f.eventIDs[0] == "" || f.eventIDs[0] != f.eventIDs[1] || f.eventIDs[1] != f.eventIDs[2] {
		t.Fatalf("event ids across retries = %v, want one generated id", f.eventIDs)
	}
}

func TestMaxAttemptsMayExceedGRPCsDefaultCapOfFive(t *testing.T) {
	f := &fakeServer{unavailable: 5}
	client := start(t, f, looper.WithMaxAttempts(6))
	if _, err := client.Decide(context.Background(), looper.DecideRequest{UseCase: "u", DecisionID: "d"}); err != nil {
		t.Fatalf("Decide = %v; want success on the 6th attempt", err)
	}
	if got := len(f.traceparents); got != 6 {
		t.Fatalf("server saw %d attempts, want 6", got)
	}
}

func TestGivesUpAfterMaxAttemptsWithTypedError(t *testing.T) {
	f := &fakeServer{unavailable: 100}
	client := start(t, f, looper.WithMaxAttempts(2))
	_, err := client.Decide(context.Background(), looper.DecideRequest{UseCase: "u", DecisionID: "d"})
	if !errors.Is(err, looper.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if got := len(f.traceparents); got != 2 {
		t.Fatalf("server saw %d attempts, want 2", got)
	}
}

func TestInvalidArgumentCarriesFieldViolations(t *testing.T) {
	client := start(t, &fakeServer{})
	_, err := client.Decide(context.Background(), looper.DecideRequest{UseCase: "u"})
	if !errors.Is(err, looper.ErrInvalidArgument) || errors.Is(err, looper.ErrNotFound) {
		t.Fatalf("err = %v, want ErrInvalidArgument", err)
	}
	e, ok := looper.AsError(err)
	if !ok {
		t.Fatalf("err %T is not *looper.Error", err)
	}
	if v, ok := e.Violation("decision_id"); !ok || v.Description != "is required" {
		t.Fatalf("violations = %+v, want decision_id: is required", e.Violations)
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("the gRPC status is not reachable through Unwrap")
	}
}

func TestPropagatesTheCallersTraceAsTraceparent(t *testing.T) {
	f := &fakeServer{}
	client := start(t, f)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), parent)
	if _, err := client.Decide(ctx, looper.DecideRequest{UseCase: "u", DecisionID: "d"}); err != nil {
		t.Fatal(err)
	}
	if got := f.traceparents[0]; !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(got, "-01") {
		t.Fatalf("traceparent = %q, want the caller's trace id", got)
	}
	// Without a trace in the context, nothing is invented.
	if _, err := client.Decide(context.Background(), looper.DecideRequest{UseCase: "u", DecisionID: "d"}); err != nil {
		t.Fatal(err)
	}
	if got := f.traceparents[1]; got != "" {
		t.Fatalf("traceparent without a trace = %q, want none", got)
	}
}

func TestDefaultDeadline(t *testing.T) {
	f := &fakeServer{block: time.Second}
	client := start(t, f, looper.WithTimeout(150*time.Millisecond), looper.WithMaxAttempts(1))
	began := time.Now()
	_, err := client.Decide(context.Background(), looper.DecideRequest{UseCase: "u", DecisionID: "d"})
	if !errors.Is(err, looper.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want ErrDeadlineExceeded", err)
	}
	if elapsed := time.Since(began); elapsed > 900*time.Millisecond {
		t.Fatalf("call took %v, the default deadline was not applied", elapsed)
	}
	if len(f.deadlines) != 1 || f.deadlines[0] > 150*time.Millisecond {
		t.Fatalf("server saw deadlines %v, want one of at most 150ms", f.deadlines)
	}
	// A deadline set by the caller wins over the default.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	f.block = 0
	if _, err := client.Decide(ctx, looper.DecideRequest{UseCase: "u", DecisionID: "d"}); err != nil {
		t.Fatal(err)
	}
	if f.deadlines[1] < 2*time.Second {
		t.Fatalf("server saw deadline %v, want the caller's 3s", f.deadlines[1])
	}
}

func TestFeatureValuesAreTyped(t *testing.T) {
	req, err := looper.DecideRequest{Context: looper.Features{"i": 3, "f": 0.5, "s": "x", "b": true, "n": nil}}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	if req.Context["i"].GetInt64Value() != 3 || req.Context["f"].GetDoubleValue() != 0.5 ||
		req.Context["s"].GetStringValue() != "x" || !req.Context["b"].GetBoolValue() || req.Context["n"].GetKind() != nil {
		t.Fatalf("context = %v", req.Context)
	}
	if _, err := (looper.DecideRequest{Context: looper.Features{"bad": []int{1}}}).Proto(); err == nil {
		t.Fatal("a slice feature value was accepted")
	}
}

// closedAddr is a loopback address nothing listens on: a port that was just free.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

func TestUnavailableNamesTheServiceAndItsAddress(t *testing.T) {
	addr := closedAddr(t)
	client, err := looper.New(looper.WithDecisionAddr(addr), looper.WithFeedbackAddr(addr), looper.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, err = client.Decide(context.Background(), looper.DecideRequest{UseCase: "u", DecisionID: "d"})
	if !errors.Is(err, looper.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if want := "looper: Decision service at " + addr + " is unavailable: "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %q, want it to start with %q", err, want)
	}
	_, err = client.LogFeedback(context.Background(), looper.Outcome{UseCase: "u", DecisionID: "d", Outcome: "clicked"})
	if e, ok := looper.AsError(err); !ok || !errors.Is(err, looper.ErrUnavailable) || e.Service != "Feedback" || e.Addr != addr ||
		!strings.HasPrefix(err.Error(), "looper: Feedback service at "+addr+" is unavailable: ") {
		t.Fatalf("err = %v, want the Feedback service at %s named", err, addr)
	}
}
