package looper

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldViolation names a bad field of a request and why it is bad.
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a failed Looper call: the gRPC code, the server's message and, for
// INVALID_ARGUMENT, the field violations decoded from the google.rpc.BadRequest detail.
// Service and Addr name the service called and the address tried, so that an UNAVAILABLE
// says which of the three could not be reached. Match kinds with
// errors.Is(err, looper.ErrInvalidArgument) and friends.
type Error struct {
	Code       codes.Code
	Message    string
	Violations []FieldViolation
	Service    string // "Decision", "Feedback" or "Trainer"
	Addr       string // the address the client was given for it
	cause      error
}

func (e *Error) Error() string {
	if e.Code == codes.Unavailable && e.Service != "" {
		return fmt.Sprintf("looper: %s service at %s is unavailable: %s", e.Service, e.Addr, e.Message)
	}
	return fmt.Sprintf("looper: %s: %s", e.Code, e.Message)
}

// Unwrap returns the underlying gRPC status error.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is the sentinel of this error's code.
func (e *Error) Is(target error) bool {
	k, ok := target.(kind)
	return ok && codes.Code(k) == e.Code
}

// Violation returns the violation of a field, if there is one.
func (e *Error) Violation(field string) (FieldViolation, bool) {
	for _, v := range e.Violations {
		if v.Field == field {
			return v, true
		}
	}
	return FieldViolation{}, false
}

type kind codes.Code

func (k kind) Error() string { return "looper: " + codes.Code(k).String() }

// Sentinels for errors.Is.
var (
	ErrInvalidArgument    error = kind(codes.InvalidArgument)
	ErrNotFound           error = kind(codes.NotFound)
	ErrFailedPrecondition error = kind(codes.FailedPrecondition)
	ErrResourceExhausted  error = kind(codes.ResourceExhausted)
	ErrUnavailable        error = kind(codes.Unavailable)
	ErrDeadlineExceeded   error = kind(codes.DeadlineExceeded)
	// The call carried no credential, or one Looper does not know (unknown, revoked, rotated).
	ErrUnauthenticated error = kind(codes.Unauthenticated)
	// The credential lacks the role the call needs in its use case.
	ErrPermissionDenied error = kind(codes.PermissionDenied)
)

// fromRPC maps a gRPC error of a call to service at addr to *Error, decoding
// grpc-status-details-bin.
func fromRPC(err error, service, addr string) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	out := &Error{Code: st.Code(), Message: st.Message(), Service: service, Addr: addr, cause: err}
	for _, detail := range st.Details() {
		if bad, ok := detail.(*errdetails.BadRequest); ok {
			for _, v := range bad.GetFieldViolations() {
				out.Violations = append(out.Violations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return out
}

// AsError returns err as *Error when it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
