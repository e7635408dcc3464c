// Command quickstart asks Looper for a decision and reports its outcome.
//
//	go run ./examples/quickstart -use-case notification_send -decision 127.0.0.1:50051 -feedback 127.0.0.1:50052
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/looper-ml/looper/clients/go/looper"
)

func main() {
	useCase := flag.String("use-case", "notification_send", "the use case (blueprint name)")
	decisionAddr := flag.String("decision", "127.0.0.1:50051", "DecisionService address")
	feedbackAddr := flag.String("feedback", "127.0.0.1:50052", "FeedbackService address")
	user := flag.String("user", "42", "the user_id to decide for")
	flag.Parse()

	client, err := looper.New(looper.WithDecisionAddr(*decisionAddr), looper.WithFeedbackAddr(*feedbackAddr),
		looper.WithTimeout(2*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx := context.Background()
	decisionID := looper.NewID() // yours: the idempotency key and what feedback refers to
	decision, err := client.Decide(ctx, looper.DecideRequest{
		UseCase: *useCase, DecisionID: decisionID, Subject: map[string]string{"user_id": *user},
		Context: looper.Features{"hour_of_day": time.Now().Hour(), "platform": "ios"},
	})
	if e, ok := looper.AsError(err); ok {
		log.Fatalf("decide failed: %v (violations: %+v)", e, e.Violations)
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("decision %s: action=%s score=%.3f model=%q\n", decisionID, decision.GetAction(),
		decision.GetScore(), decision.GetModelVersion())

	if decision.GetAction() == "true" { // we sent it, and the user opened it
		if _, err := client.LogFeedback(ctx, looper.Outcome{UseCase: *useCase, DecisionID: decisionID,
			Outcome: "opened", Value: 1}); err != nil {
			log.Fatal(err)
		}
		fmt.Println("feedback logged")
	}
}
