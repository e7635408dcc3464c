// Package contract runs Looper's cross-language client contract against real services.
// tests/clients/test_cross_language.py starts the services, applies the contract blueprint
// and runs this with LOOPER_DECISION_ADDR, LOOPER_FEEDBACK_ADDR, LOOPER_TRAINER_ADDR,
// LOOPER_TOKEN (an administrator's, which the client takes from the environment),
// LOOPER_USE_CASE, LOOPER_MIXED_USE_CASE and LOOPER_RUN_ID set; without them the tests skip.
package contract

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/looper-ml/looper/clients/go/looper"
	looperv1 "github.com/looper-ml/looper/clients/go/looperpb/v1"
)

type env struct {
	client       *looper.Client
	useCase      string
	mixedUseCase string // the use case of the mixed-language runs (a longer window)
	runID        string
}

func setup(t *testing.T) env {
	t.Helper()
	decision := os.Getenv("LOOPER_DECISION_ADDR")
	if decision == "" {
		t.Skip("LOOPER_DECISION_ADDR is not set; the harness in tests/clients sets it")
	}
	for _, name := range []string{"LOOPER_FEEDBACK_ADDR", "LOOPER_TRAINER_ADDR", "LOOPER_TOKEN", "LOOPER_USE_CASE", "LOOPER_RUN_ID"} {
		if os.Getenv(name) == "" {
			t.Fatalf("%s is not set", name)
		}
	}
	client, err := looper.New(looper.WithDecisionAddr(decision), looper.WithFeedbackAddr(os.Getenv("LOOPER_FEEDBACK_ADDR")),
		looper.WithTrainerAddr(os.Getenv("LOOPER_TRAINER_ADDR")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	mixed := os.Getenv("LOOPER_MIXED_USE_CASE")
	if mixed == "" {
		mixed = os.Getenv("LOOPER_USE_CASE")
	}
	return env{client: client, useCase: os.Getenv("LOOPER_USE_CASE"), mixedUseCase: mixed, runID: os.Getenv("LOOPER_RUN_ID")}
}

func waitJoined(t *testing.T, e env, decisionID string) *looperv1.GetLabelResponse {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		label, err := e.client.GetLabel(context.Background(), e.useCase, decisionID)
		if err != nil {
			t.Fatalf("GetLabel(%s): %v", decisionID, err)
		}
		if label.GetState() == looperv1.LabelState_LABEL_STATE_JOINED {
			return label
		}
		if time.Now().After(deadline) {
			t.Fatalf("label of %s still %v after 20s", decisionID, label.GetState())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestContract is the scenario every language's suite runs.
func TestContract(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	id := e.runID + "-go-main"
	req := looper.DecideRequest{UseCase: e.useCase, DecisionID: id, Subject: map[string]string{"user_id": "u-go"},
		Context: looper.Features{"hour_of_day": 21}}

	// 1. decide
	first, err := e.client.DecideReplay(ctx, req)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	d := first.GetDecision()
	if first.GetReplayed() || d.GetDecisionId() != id || d.GetUseCase() != e.useCase || d.GetBlueprintVersion() < 1 {
		t.Fatalf("decision = %v (replayed %v)", d, first.GetReplayed())
	}
	if a := d.GetAction(); a != "true" && a != "false" {
		t.Fatalf("binary action = %q", a)
	}
	// 2. the decision id is the idempotency key
	again, err := e.client.DecideReplay(ctx, req)
	if err != nil || !again.GetReplayed() || again.GetDecision().GetAction() != d.GetAction() ||
		!again.GetDecision().GetDecideTime().AsTime().Equal(d.GetDecideTime().AsTime()) {
		t.Fatalf("replay = %v, %v; want the logged decision", again, err)
	}
	// 3. feedback, idempotent by event id
	outcome := looper.Outcome{UseCase: e.useCase, DecisionID: id, Outcome: "clicked", Value: 1, EventID: e.runID + "-go-ev1"}
	if accepted, err := e.client.LogFeedback(ctx, outcome); err != nil || !accepted {
		t.Fatalf("LogFeedback = %v, %v; want accepted", accepted, err)
	}
	if accepted, err := e.client.LogFeedback(ctx, outcome); err != nil || accepted {
		t.Fatalf("LogFeedback resent = %v, %v; want a duplicate", accepted, err)
	}
	// 4. the decision was logged with the features it used
	logged, err := e.client.GetDecision(ctx, e.useCase, id)
	if err != nil {
		t.Fatalf("GetDecision: %v", err)
	}
	if logged.GetDecision().GetDecisionId() != id || logged.GetSubject()["user_id"] != "u-go" ||
		logged.GetFeatures()["hour_of_day"].GetInt64Value() != 21 {
		t.Fatalf("logged decision = %v", logged)
	}
	// 5. the label so far; its window closes 2s after the decision
	label, err := e.client.GetLabel(ctx, e.useCase, id)
	if err != nil {
		t.Fatalf("GetLabel: %v", err)
	}
	if label.GetOutcomeCount() != 1 || label.GetValue() != 1 ||
		!label.GetWindowEndTime().AsTime().Equal(d.GetDecideTime().AsTime().Add(2*time.Second)) {
		t.Fatalf("label = %v", label)
	}
	// 6. a batch answers each item on its own
	results, err := e.client.DecideBatch(ctx, []looper.DecideRequest{
		{UseCase: e.useCase, DecisionID: e.runID + "-go-batch-0", Subject: map[string]string{"user_id": "u-go"}, Context: looper.Features{"hour_of_day": 3}},
		{UseCase: e.useCase, DecisionID: "", Subject: map[string]string{"user_id": "u-go"}},
	})
	if err != nil || len(results) != 2 {
		t.Fatalf("DecideBatch = %v, %v", results, err)
	}
	if results[0].GetResponse().GetDecision().GetDecisionId() != e.runID+"-go-batch-0" {
		t.Fatalf("batch item 0 = %v", results[0])
	}
	if bad := results[1].GetError(); bad.GetCode() != 3 || bad.GetField() != "requests[1].decision_id" {
		t.Fatalf("batch item 1 = %v, want INVALID_ARGUMENT on requests[1].decision_id", results[1])
	}
	// 7. a bad request is a typed error naming the field
	_, err = e.client.Decide(ctx, looper.DecideRequest{UseCase: e.useCase, Subject: map[string]string{"user_id": "u-go"}})
	if !errors.Is(err, looper.ErrInvalidArgument) {
		t.Fatalf("empty decision_id: err = %v, want ErrInvalidArgument", err)
	}
	if e2, _ := looper.AsError(err); e2 == nil {
		t.Fatalf("err %T is not *looper.Error", err)
	} else if _, ok := e2.Violation("decision_id"); !ok {
		t.Fatalf("violations = %+v, want decision_id", e2.Violations)
	}
	// 8. an unknown decision is NOT_FOUND
	if _, err := e.client.GetDecision(ctx, e.useCase, e.runID+"-go-unknown"); !errors.Is(err, looper.ErrNotFound) {
		t.Fatalf("unknown decision: err = %v, want ErrNotFound", err)
	}
	// 9. after the window closes the label is joined
	joined := waitJoined(t, e, id)
	if joined.GetValue() != 1 || joined.GetOutcomeCount() != 1 {
		t.Fatalf("joined label = %v", joined)
	}
}

func ids(name string) []string {
	var out []string
	for _, id := range strings.Split(os.Getenv(name), ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// TestMixedDecide makes the decisions that other languages give feedback to
// (LOOPER_MIXED_DECIDE: comma-separated decision ids).
func TestMixedDecide(t *testing.T) {
	todo := ids("LOOPER_MIXED_DECIDE")
	if len(todo) == 0 {
		t.Skip("LOOPER_MIXED_DECIDE is empty")
	}
	e := setup(t)
	for _, id := range todo {
		d, err := e.client.Decide(context.Background(), looper.DecideRequest{UseCase: e.mixedUseCase, DecisionID: id,
			Subject: map[string]string{"user_id": "mixed"}, Context: looper.Features{"hour_of_day": 12}})
		if err != nil || d.GetDecisionId() != id {
			t.Fatalf("Decide(%s) = %v, %v", id, d, err)
		}
	}
}

// TestMixedFeedback gives a click to decisions made by other languages
// (LOOPER_MIXED_FEEDBACK) and checks that the label counts it.
func TestMixedFeedback(t *testing.T) {
	todo := ids("LOOPER_MIXED_FEEDBACK")
	if len(todo) == 0 {
		t.Skip("LOOPER_MIXED_FEEDBACK is empty")
	}
	e := setup(t)
	for _, id := range todo {
		if _, err := e.client.GetDecision(context.Background(), e.mixedUseCase, id); err != nil {
			t.Fatalf("GetDecision(%s): %v", id, err)
		}
		accepted, err := e.client.LogFeedback(context.Background(), looper.Outcome{UseCase: e.mixedUseCase, DecisionID: id,
			Outcome: "clicked", Value: 1})
		if err != nil || !accepted {
			t.Fatalf("LogFeedback(%s) = %v, %v", id, accepted, err)
		}
		label, err := e.client.GetLabel(context.Background(), e.mixedUseCase, id)
		if err != nil || label.GetOutcomeCount() != 1 || label.GetValue() != 1 {
			t.Fatalf("GetLabel(%s) = %v, %v", id, label, err)
		}
	}
}
