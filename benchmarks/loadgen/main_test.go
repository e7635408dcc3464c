package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// A server that sheds its first calls with a RetryInfo hint, then echoes.
func shedding(t *testing.T, shedFirst int32) (string, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	server := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(
		func(_ any, stream grpc.ServerStream) error {
			var request []byte
			if err := stream.RecvMsg(&request); err != nil {
				return err
			}
			if calls.Add(1) <= shedFirst {
				st, _ := status.New(codes.ResourceExhausted, "busy").WithDetails(
					&errdetails.RetryInfo{RetryDelay: durationpb.New(2 * time.Millisecond)})
				return st.Err()
			}
			return stream.SendMsg(&request)
		}))
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	return listener.Addr().String(), &calls
}

func TestShedCallsAreRetriedAfterTheHintAndNotCountedAsErrors(t *testing.T) {
	address, calls := shedding(t, 3)
	requests := filepath.Join(t.TempDir(), "requests.bin")
	if err := os.WriteFile(requests, []byte{2, 0, 0, 0, 'h', 'i'}, 0o600); err != nil {
		t.Fatal(err)
	}
	built, err := newStep(Step{Target: address, Method: "/x.Y/Z", Requests: requests}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{job: Job{Concurrency: 1, Calls: 2}, steps: []*step{built}, timeout: 5 * time.Second}
	defer r.close()
	latencies, _ := r.phase(2)
	if r.errors != 0 || r.shed.Load() != 3 || calls.Load() != 5 || len(latencies) != 2 {
		t.Fatalf("errors %d (%s), shed %d, calls %d", r.errors, r.firstError, r.shed.Load(), calls.Load())
	}
	if r.respBytes.Load() != 4 {
		t.Fatalf("the answers were not the requests: %d bytes", r.respBytes.Load())
	}
}

func TestIdsAreUniqueAndKeepTheRequestsLength(t *testing.T) {
	r := &runner{job: Job{IDPrefix: "b0001-"}}
	template := []byte("a@@@@@@@@@@@@b@@@@@@@@@@@@c")
	first := r.withUniqueIDs(template, []byte("@@@@@@@@@@@@"))
	second := r.withUniqueIDs(template, []byte("@@@@@@@@@@@@"))
	if string(first) != "ab0001-000001bb0001-000002c" || string(second) != "ab0001-000003bb0001-000004c" {
		t.Fatalf("got %q and %q", first, second)
	}
	if string(template) != "a@@@@@@@@@@@@b@@@@@@@@@@@@c" {
		t.Fatal("the template changed")
	}
}

func TestContextHelpersStopAtTheDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if wait(ctx, time.Hour) {
		t.Fatal("waited past a cancelled context")
	}
}
