package contract

// The SDK's retries, deadlines and trace propagation against the real services (the unit
// tests in ../looper check them against an in-process fake). tests/clients/harness.py runs
// these with the services traced and answers the restart handshake in LOOPER_RESTART_DIR.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/looper-ml/looper/clients/go/looper"
	looperv1 "github.com/looper-ml/looper/clients/go/looperpb/v1"
)

// handshake creates a file of the restart handshake, or waits for the harness to create one.
func handshake(t *testing.T, dir string) (signal func(string), await func(string)) {
	signal = func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	await = func(name string) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the harness did not create %s within 2 minutes", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return signal, await
}

// TestRetriesUnavailableAcrossARestart issues a Decide and a LogFeedback while the services
// are down; the harness starts them again once both are issued, and both succeed, each
// written exactly once.
func TestRetriesUnavailableAcrossARestart(t *testing.T) {
	dir := os.Getenv("LOOPER_RESTART_DIR")
	if dir == "" {
		t.Skip("LOOPER_RESTART_DIR is not set; the harness in tests/clients sets it")
	}
	e := setup(t)
	signal, await := handshake(t, dir)
	issued := make(chan struct{}, 8)
	markIssued := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		issued <- struct{}{} // runs before the first attempt; gRPC retries below this
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	// A retry budget far beyond a restart (seconds): ~1s between attempts once backed off.
	client, err := looper.New(looper.WithDecisionAddr(os.Getenv("LOOPER_DECISION_ADDR")),
		looper.WithFeedbackAddr(os.Getenv("LOOPER_FEEDBACK_ADDR")), looper.WithMaxAttempts(100),
		looper.WithTimeout(90*time.Second), looper.WithDialOptions(grpc.WithChainUnaryInterceptor(markIssued)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	id := e.runID + "-go-restart"
	req := looper.DecideRequest{UseCase: e.useCase, DecisionID: id, Subject: map[string]string{"user_id": "u-go"},
		Context: looper.Features{"hour_of_day": 4}}
	outcome := looper.Outcome{UseCase: e.useCase, DecisionID: id, Outcome: "clicked", Value: 1, EventID: id + "-ev"}

	// Connected first, so the calls below meet services that went away, not ones never reached.
	if _, err := client.GetLabel(ctx, e.useCase, id); !errors.Is(err, looper.ErrNotFound) {
		t.Fatalf("GetLabel before the decision: %v, want ErrNotFound", err)
	}
	if _, err := client.GetDecision(ctx, e.useCase, id); !errors.Is(err, looper.ErrNotFound) {
		t.Fatalf("GetDecision before the decision: %v, want ErrNotFound", err)
	}
	for len(issued) > 0 {
		<-issued
	}
	signal("ready")
	await("stopped")

	type decided struct {
		resp *looperv1.DecideResponse
		err  error
	}
	type logged struct {
		accepted bool
		err      error
	}
	decideDone, feedbackDone := make(chan decided, 1), make(chan logged, 1)
	go func() {
		resp, err := client.DecideReplay(ctx, req)
		decideDone <- decided{resp, err}
	}()
	go func() {
		accepted, err := client.LogFeedback(ctx, outcome)
		feedbackDone <- logged{accepted, err}
	}()
	<-issued
	<-issued
	signal("calling")

	d := <-decideDone
	if d.err != nil || d.resp.GetDecision().GetDecisionId() != id {
		t.Fatalf("Decide across the restart = %v, %v", d.resp, d.err)
	}
	if d.resp.GetReplayed() {
		t.Fatal("Decide across the restart was a replay: an earlier attempt had written the decision")
	}
	f := <-feedbackDone
	if f.err != nil || !f.accepted {
		t.Fatalf("LogFeedback across the restart = %v, %v; want accepted", f.accepted, f.err)
	}
	// Written once: the decision reads back and replays, the event is a duplicate when resent.
	if got, err := client.GetDecision(ctx, e.useCase, id); err != nil || got.GetDecision().GetAction() != d.resp.GetDecision().GetAction() {
		t.Fatalf("GetDecision after the restart = %v, %v", got, err)
	}
	if again, err := client.DecideReplay(ctx, req); err != nil || !again.GetReplayed() {
		t.Fatalf("Decide again = %v, %v; want the logged decision replayed", again, err)
	}
	if accepted, err := client.LogFeedback(ctx, outcome); err != nil || accepted {
		t.Fatalf("LogFeedback resent = %v, %v; want a duplicate", accepted, err)
	}
}

// TestTheDeadlineFailsACallTheServerCannotAnswerInTime: the client's timeout of 1ms is the
// call's gRPC deadline; no server decides 200 times in 1ms, so the call fails with the typed
// error, while the same call with the caller's own deadline succeeds.
func TestTheDeadlineFailsACallTheServerCannotAnswerInTime(t *testing.T) {
	e := setup(t)
	client, err := looper.New(looper.WithDecisionAddr(os.Getenv("LOOPER_DECISION_ADDR")),
		looper.WithTimeout(time.Millisecond), looper.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	batch := func(prefix string) []looper.DecideRequest {
		reqs := make([]looper.DecideRequest, 200)
		for i := range reqs {
			reqs[i] = looper.DecideRequest{UseCase: e.useCase, DecisionID: fmt.Sprintf("%s%s%03d", e.runID, prefix, i),
				Subject: map[string]string{"user_id": "u-go"}, Context: looper.Features{"hour_of_day": 5}}
		}
		return reqs
	}
	// The caller's deadline wins over the client's: this connects and succeeds.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if results, err := client.DecideBatch(ctx, batch("-go-in-time-")); err != nil || len(results) != 200 || results[199].GetError() != nil {
		t.Fatalf("DecideBatch with a 60s deadline = %d results, %v", len(results), err)
	}
	_, err = client.DecideBatch(context.Background(), batch("-go-too-late-"))
	if !errors.Is(err, looper.ErrDeadlineExceeded) {
		t.Fatalf("DecideBatch with a 1ms deadline: err = %v, want ErrDeadlineExceeded", err)
	}
}

// TestTheCallersTraceReachesTheDecisionLog: a Decide made under the caller's trace
// (LOOPER_TRACE_ID) is logged with a traceparent of that trace, the Decision service's own
// span, a child of the caller's.
func TestTheCallersTraceReachesTheDecisionLog(t *testing.T) {
	traceHex := os.Getenv("LOOPER_TRACE_ID")
	if traceHex == "" {
		t.Skip("LOOPER_TRACE_ID is not set; the harness in tests/clients sets it")
	}
	e := setup(t)
	traceID, err := trace.TraceIDFromHex(traceHex)
	if err != nil {
		t.Fatal(err)
	}
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled})
	id := e.runID + "-go-traced"
	if _, err := e.client.Decide(trace.ContextWithSpanContext(context.Background(), parent), looper.DecideRequest{
		UseCase: e.useCase, DecisionID: id, Subject: map[string]string{"user_id": "u-go"}, Context: looper.Features{"hour_of_day": 6},
	}); err != nil {
		t.Fatal(err)
	}
	logged, err := e.client.GetDecision(context.Background(), e.useCase, id)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(logged.GetTraceparent(), "-")
	if len(parts) != 4 || parts[1] != traceHex || parts[2] == spanID.String() {
		t.Fatalf("logged traceparent = %q, want a span of trace %s other than the caller's", logged.GetTraceparent(), traceHex)
	}
}

// TestCallsWithoutTheRightCredentialFailWithTypedErrors: without a token, or with one Looper
// does not know, a call is ErrUnauthenticated; with a credential that may only read the use
// case (created through the Access service), a Decide is ErrPermissionDenied while a read
// goes through.
func TestCallsWithoutTheRightCredentialFailWithTypedErrors(t *testing.T) {
	e := setup(t) // the administrator's token, from LOOPER_TOKEN
	ctx := context.Background()
	req := looper.DecideRequest{UseCase: e.useCase, DecisionID: e.runID + "-go-denied", Subject: map[string]string{"user_id": "u-go"}}
	// The Trainer (and Access) service starts last after a restart: wait for it to be ready.
	ready, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	created, err := e.client.Access.CreateCredential(ready, &looperv1.CreateCredentialRequest{Name: e.runID + "-go-reader",
		Grants: []*looperv1.Grant{{UseCase: e.useCase, Roles: []looperv1.Role{looperv1.Role_ROLE_READ}}}}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("CreateCredential: %v", err)
	}
	defer func() {
		_, _ = e.client.Access.RevokeCredential(ready, &looperv1.RevokeCredentialRequest{CredentialId: created.GetCredential().GetCredentialId()})
	}()
	client := func(opts ...looper.Option) *looper.Client {
		c, err := looper.New(append([]looper.Option{looper.WithDecisionAddr(os.Getenv("LOOPER_DECISION_ADDR")),
			looper.WithMaxAttempts(1)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	reader := client(looper.WithToken(created.GetToken()))
	unknown := client(looper.WithToken("lpr_not-a-token"))
	t.Setenv("LOOPER_TOKEN", "") // and no token at all
	anonymous := client()

	for name, c := range map[string]*looper.Client{"no token": anonymous, "an unknown token": unknown} {
		if _, err := c.Decide(ctx, req); !errors.Is(err, looper.ErrUnauthenticated) || errors.Is(err, looper.ErrPermissionDenied) {
			t.Errorf("Decide with %s: err = %v, want ErrUnauthenticated", name, err)
		}
	}
	if _, err := reader.Decide(ctx, req); !errors.Is(err, looper.ErrPermissionDenied) {
		t.Errorf("Decide with a reader's token: err = %v, want ErrPermissionDenied", err)
	}
	if _, err := reader.GetDecision(ctx, e.useCase, req.DecisionID); !errors.Is(err, looper.ErrNotFound) {
		t.Errorf("GetDecision with a reader's token: err = %v, want ErrNotFound (allowed, and never decided)", err)
	}
}
