// Command quickstart asks Looper whether to send a notification and reports that it was
// opened. Start the services and apply the notification_send blueprint (see the top-level
// README), then, from clients/go, with the token `make run` wrote:
//
//	LOOPER_TOKEN=$(cat ../../data/run/looper-token) go run ./examples/quickstart
//
// LOOPER_DECISION_ADDR and LOOPER_FEEDBACK_ADDR override the services' default addresses.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/looper-ml/looper/clients/go/looper"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	// One client for the whole program: it keeps a connection per service.
	client, err := looper.New(
		looper.WithDecisionAddr(envOr("LOOPER_DECISION_ADDR", "127.0.0.1:50051")),
		looper.WithFeedbackAddr(envOr("LOOPER_FEEDBACK_ADDR", "127.0.0.1:50052")),
		// Every call's credential; without this option the client reads LOOPER_TOKEN itself.
		looper.WithToken(os.Getenv("LOOPER_TOKEN")),
		looper.WithTimeout(2*time.Second), // each call's deadline; add looper.WithTLS(nil) for TLS
	)
	if err != nil {
		return err
	}
	defer client.Close()

	decisionID := looper.NewID() // yours: the idempotency key that feedback refers to
	decision, err := client.Decide(ctx, looper.DecideRequest{
		UseCase:    "notification_send",
		DecisionID: decisionID,
		Subject:    map[string]string{"user_id": "42"},
		Context:    looper.Features{"hour_of_day": time.Now().Hour(), "platform": "ios"},
	})
	if errors.Is(err, looper.ErrInvalidArgument) {
		e, _ := looper.AsError(err)
		return fmt.Errorf("bad request %v: %w", e.Violations, err)
	} else if err != nil {
		return err // e.g. looper.ErrUnavailable: the message names the service and its address
	}
	fmt.Printf("decision %s: action=%s\n", decisionID, decision.GetAction())

	if decision.GetAction() == "true" { // we sent the notification; later, the user opened it
		if _, err := client.LogFeedback(ctx, looper.Outcome{UseCase: "notification_send", DecisionID: decisionID,
			Outcome: "opened", Value: 1}); err != nil {
			return err
		}
		fmt.Println("feedback logged")
	}
	return nil
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
