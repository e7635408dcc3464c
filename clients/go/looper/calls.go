package looper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	looperv1 "github.com/looper-ml/looper/clients/go/looperpb/v1"
)

// Features are typed feature values by name: bool, int/int32/int64, float32/float64,
// string, or nil for missing.
type Features map[string]any

// Candidate is an action offered for multi-action and ranking use cases.
type Candidate struct {
	ActionID string
	Features Features
}

// DecideRequest asks for one decision. DecisionID is yours: the idempotency key and the
// id that feedback refers to.
type DecideRequest struct {
	UseCase    string
	DecisionID string
	Subject    map[string]string
	Context    Features
	Candidates []Candidate
}

// Proto builds the wire request.
func (r DecideRequest) Proto() (*looperv1.DecideRequest, error) {
	ctx, err := featureMap(r.Context)
	if err != nil {
		return nil, err
	}
	out := &looperv1.DecideRequest{UseCase: r.UseCase, DecisionId: r.DecisionID, Subject: r.Subject, Context: ctx}
	for _, c := range r.Candidates {
		features, err := featureMap(c.Features)
		if err != nil {
			return nil, fmt.Errorf("candidate %q: %w", c.ActionID, err)
		}
		out.Candidates = append(out.Candidates, &looperv1.Candidate{ActionId: c.ActionID, Features: features})
	}
	return out, nil
}

// Outcome is what happened after a decision. An empty EventID gets a fresh one, fixed
// across retries; a zero EventTime means "when received".
type Outcome struct {
	UseCase    string
	DecisionID string
	Outcome    string
	Value      float64
	EventID    string
	EventTime  time.Time
}

// Proto builds the wire event, generating the event id when it is empty.
func (o Outcome) Proto() *looperv1.OutcomeEvent {
	event := &looperv1.OutcomeEvent{EventId: o.EventID, UseCase: o.UseCase, DecisionId: o.DecisionID,
		Outcome: o.Outcome, Value: o.Value}
	if event.EventId == "" {
		event.EventId = NewID()
	}
	if !o.EventTime.IsZero() {
		event.EventTime = timestamppb.New(o.EventTime)
	}
	return event
}

// NewID returns a random 32-hex-digit id, usable as a decision or event id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Decide makes one decision; calling it again with the same DecisionID returns the
// logged decision (see DecideReplay to learn whether it was replayed).
func (c *Client) Decide(ctx context.Context, req DecideRequest) (*looperv1.Decision, error) {
	resp, err := c.DecideReplay(ctx, req)
	return resp.GetDecision(), err
}

// DecideReplay is Decide returning the whole response, with its replayed flag.
func (c *Client) DecideReplay(ctx context.Context, req DecideRequest) (*looperv1.DecideResponse, error) {
	msg, err := req.Proto()
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.Decision.Decide(ctx, msg)
	return resp, c.fail(decisionService, err)
}

// DecideBatch makes many decisions in one call; each result holds a response or an error.
func (c *Client) DecideBatch(ctx context.Context, reqs []DecideRequest) ([]*looperv1.DecideBatchResult, error) {
	msg := &looperv1.DecideBatchRequest{}
	for i, r := range reqs {
		p, err := r.Proto()
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		msg.Requests = append(msg.Requests, p)
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.Decision.DecideBatch(ctx, msg)
	return resp.GetResults(), c.fail(decisionService, err)
}

// LogFeedback reports an outcome; accepted is false when the event id had been logged before.
func (c *Client) LogFeedback(ctx context.Context, o Outcome) (accepted bool, err error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.Feedback.LogFeedback(ctx, &looperv1.LogFeedbackRequest{Event: o.Proto()})
	return resp.GetStatus() == looperv1.FeedbackStatus_FEEDBACK_STATUS_ACCEPTED, c.fail(feedbackService, err)
}

// LogFeedbackBatch reports many outcomes in one call; one accepted flag per event.
func (c *Client) LogFeedbackBatch(ctx context.Context, outcomes []Outcome) ([]bool, error) {
	msg := &looperv1.LogFeedbackBatchRequest{}
	for _, o := range outcomes {
		msg.Events = append(msg.Events, o.Proto())
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.Feedback.LogFeedbackBatch(ctx, msg)
	if err != nil {
		return nil, c.fail(feedbackService, err)
	}
	out := make([]bool, len(resp.GetStatuses()))
	for i, s := range resp.GetStatuses() {
		out[i] = s == looperv1.FeedbackStatus_FEEDBACK_STATUS_ACCEPTED
	}
	return out, nil
}

// GetDecision reads back a logged decision with the features it used.
func (c *Client) GetDecision(ctx context.Context, useCase, decisionID string) (*looperv1.GetDecisionResponse, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.Decision.GetDecision(ctx, &looperv1.GetDecisionRequest{UseCase: useCase, DecisionId: decisionID})
	return resp, c.fail(decisionService, err)
}

// GetLabel reads the label joined for a decision so far.
func (c *Client) GetLabel(ctx context.Context, useCase, decisionID string) (*looperv1.GetLabelResponse, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.Feedback.GetLabel(ctx, &looperv1.GetLabelRequest{UseCase: useCase, DecisionId: decisionID})
	return resp, c.fail(feedbackService, err)
}

// ApplyBlueprint applies a blueprint YAML document; created is false when it was unchanged.
func (c *Client) ApplyBlueprint(ctx context.Context, specYAML string) (bp *looperv1.Blueprint, created bool, err error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.Trainer.ApplyBlueprint(ctx, &looperv1.ApplyBlueprintRequest{SpecYaml: specYAML})
	return resp.GetBlueprint(), resp.GetCreated(), c.fail(trainerService, err)
}

// FeatureValue converts a Go value to a typed FeatureValue.
func FeatureValue(v any) (*looperv1.FeatureValue, error) {
	switch x := v.(type) {
	case nil:
		return &looperv1.FeatureValue{}, nil
	case bool:
		return &looperv1.FeatureValue{Kind: &looperv1.FeatureValue_BoolValue{BoolValue: x}}, nil
	case int:
		return &looperv1.FeatureValue{Kind: &looperv1.FeatureValue_Int64Value{Int64Value: int64(x)}}, nil
	case int32:
		return &looperv1.FeatureValue{Kind: &looperv1.FeatureValue_Int64Value{Int64Value: int64(x)}}, nil
	case int64:
		return &looperv1.FeatureValue{Kind: &looperv1.FeatureValue_Int64Value{Int64Value: x}}, nil
	case float32:
		return &looperv1.FeatureValue{Kind: &looperv1.FeatureValue_DoubleValue{DoubleValue: float64(x)}}, nil
	case float64:
		return &looperv1.FeatureValue{Kind: &looperv1.FeatureValue_DoubleValue{DoubleValue: x}}, nil
	case string:
		return &looperv1.FeatureValue{Kind: &looperv1.FeatureValue_StringValue{StringValue: x}}, nil
	case *looperv1.FeatureValue:
		return x, nil
	}
	return nil, fmt.Errorf("looper: feature values must be bool, int, float, string or nil, not %T", v)
}

func featureMap(in Features) (map[string]*looperv1.FeatureValue, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]*looperv1.FeatureValue, len(in))
	for name, v := range in {
		fv, err := FeatureValue(v)
		if err != nil {
			return nil, fmt.Errorf("feature %q: %w", name, err)
		}
		out[name] = fv
	}
	return out, nil
}
