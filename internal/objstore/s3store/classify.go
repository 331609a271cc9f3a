package s3store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/kwick/kwickmig/internal/objstore"
)

// Every failure is sorted here, once, for both PUT paths and every other
// operation (objstore/errors.go has the classes):
//
//   - Fatal: TLS verification (unknown authority, invalid or expired
//     certificate, wrong host name, a TLS peer that is not TLS, a handshake
//     alert about certificates), HTTP 401/403, 404 NoSuchBucket, 301 (wrong
//     region or endpoint) and 400 except the per-object codes below. Never
//     retried: every later request would fail the same way.
//   - Unreachable: no HTTP answer at all — refused, reset, EOF, DNS, dial,
//     TLS-handshake, response-header and attempt timeouts. Retried, but at
//     most maxConnAttempts attempts in all: the caller probes and resumes.
//   - anything else, per object: 503 SlowDown and 429 (throttling, retried
//     and paced), other 5xx (retried), the per-object 400s.
const maxConnAttempts = 3

type errClass int

const (
	classOther errClass = iota
	classCanceled
	classFatal
	classUnreachable
)

// perObject400 are 400 codes about one request's body or key, not about the
// bucket, the credentials or the configuration: the object fails, the run
// goes on. RequestTimeout (a body too slow to arrive) is retried.
var perObject400 = map[string]bool{
	"BadDigest": true, "InvalidDigest": true, "XAmzContentChecksumMismatch": true, "InvalidChecksum": true,
	"KeyTooLongError": true, "EntityTooLarge": true, "EntityTooSmall": true, "MetadataTooLarge": true,
	"IncompleteBody": true, "InvalidPart": true, "InvalidPartOrder": true, "NoSuchUpload": true,
	"RequestTimeout": true, "RequestTimeoutException": true,
}

// classify marks err with its class (nil stays nil; a cancellation by the
// caller stays unmarked). what names the call ("head KEY", "bucket B").
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	switch classOf(err) {
	case classFatal:
		return objstore.Fatal(withHint(fmt.Errorf("%s: %w", what, err)))
	case classUnreachable:
		return objstore.Unreachable(&shortError{msg: what + ": " + noAnswer(err), err: err})
	}
	return fmt.Errorf("%s: %w", what, err)
}

// noAnswer says, in one short line, that the endpoint did not answer and
// what the last attempt saw (the SDK's own text repeats itself).
func noAnswer(err error) string {
	var me *retry.MaxAttemptsError
	if !errors.As(err, &me) {
		// Not the SDK's retry loop (one attempt, or a caller that counts
		// its own, as multipart parts do): keep the whole text.
		return "the endpoint did not answer: " + err.Error()
	}
	var cause error = err
	var ue *url.Error
	var at *attemptTimeoutError
	if errors.As(err, &ue) {
		cause = ue
	} else if errors.As(err, &at) {
		cause = at
	}
	return fmt.Sprintf("the endpoint did not answer (%d attempts): %v", me.Attempt, cause)
}

// shortError carries a concise message over the full error chain.
type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }

// classifyRead sorts an error from reading an object's body: the answer
// started, so only a broken connection or a stall is left to report.
func classifyRead(err error) error {
	if classOf(err) == classUnreachable {
		return objstore.Unreachable(err)
	}
	return err
}

func classOf(err error) errClass {
	if err == nil {
		return classOther
	}
	if errors.Is(err, objstore.ErrFatal) {
		return classFatal
	}
	if errors.Is(err, objstore.ErrUnreachable) {
		return classUnreachable
	}
	// The caller's own cancellation (or deadline) says nothing about the
	// endpoint. The SDK reports it as CanceledError/RequestCanceledError (so
	// does pacerMiddleware); a per-attempt deadline is an
	// attemptTimeoutError instead. The fast path checks its context itself.
	var canceled interface{ CanceledError() bool }
	if (errors.As(err, &canceled) && canceled.CanceledError()) || errors.Is(err, context.Canceled) {
		return classCanceled
	}
	if status, code := statusOf(err); status > 0 {
		switch {
		case status == http.StatusUnauthorized, status == http.StatusForbidden,
			status == http.StatusMovedPermanently,
			status == http.StatusNotFound && code == "NoSuchBucket",
			status == http.StatusBadRequest && !perObject400[code]:
			return classFatal
		}
		return classOther
	}
	if tlsVerification(err) {
		return classFatal
	}
	// Reading the caller's body failed (a file on NFS, say): that says
	// nothing about the endpoint, even when it is a timeout.
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return classOther
	}
	if connectionLevel(err) {
		return classUnreachable
	}
	return classOther
}

// statusOf returns the HTTP status (0: no answer) and the S3 error code.
func statusOf(err error) (int, string) {
	var hs interface{ HTTPStatusCode() int }
	if !errors.As(err, &hs) || hs.HTTPStatusCode() == 0 {
		return 0, ""
	}
	var ec interface{ ErrorCode() string }
	code := ""
	if errors.As(err, &ec) {
		code = ec.ErrorCode()
	}
	return hs.HTTPStatusCode(), code
}

func tlsVerification(err error) bool {
	var (
		unknownCA   x509.UnknownAuthorityError
		invalid     x509.CertificateInvalidError
		hostname    x509.HostnameError
		verify      *tls.CertificateVerificationError
		notTLS      tls.RecordHeaderError
		alert       tls.AlertError
		constraints x509.ConstraintViolationError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &hostname),
		errors.As(err, &verify), errors.As(err, &notTLS), errors.As(err, &constraints):
		return true
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http turns the tls.RecordHeaderError into words.
		return true
	case errors.As(err, &alert):
		// QUIC-style alert values (net/http over TCP reports them below).
		switch alert {
		case 40, 42, 43, 44, 45, 46, 48, 70, 116: // handshake_failure, bad/unsupported/revoked/expired/unknown certificate, unknown_ca, protocol_version, certificate_required
			return true
		}
	}
	// The server refused our certificate (mutual TLS) or our TLS: an alert
	// arrives as *net.OpError{Op: "remote error"} around an unexported type.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		msg := op.Err.Error()
		return strings.Contains(msg, "certificate") || strings.Contains(msg, "handshake failure") ||
			strings.Contains(msg, "protocol version")
	}
	return false
}

func connectionLevel(err error) bool {
	var (
		op      *net.OpError
		dns     *net.DNSError
		attempt *attemptTimeoutError
		readTO  *awshttp.ResponseTimeoutError
		timeout interface{ Timeout() bool }
	)
	switch {
	case errors.As(err, &op), errors.As(err, &dns), errors.As(err, &attempt), errors.As(err, &readTO),
		errors.As(err, &timeout) && timeout.Timeout(),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	}
	// net/http reports some broken connections only in words.
	msg := err.Error()
	return strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "use of closed network connection") || strings.Contains(msg, "server closed idle connection")
}

// withHint adds what to do to the two fatal errors a user meets first.
func withHint(err error) error {
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) {
		return fmt.Errorf("%w (the endpoint's TLS certificate is not trusted: give its CA with --ca-bundle or AWS_CA_BUNDLE)", err)
	}
	if status, _ := statusOf(err); status == http.StatusForbidden || status == http.StatusUnauthorized {
		return fmt.Errorf("%w (check the credentials and the bucket's permissions)", err)
	}
	return err
}

// classRetryer is the SDK's standard retryer with kwickmig's classes on
// top: fatal errors are never retried, and connection-level failures get
// at most maxConnAttempts attempts in all (throttling and 5xx keep the
// full MaxAttempts).
type classRetryer struct {
	aws.RetryerV2
}

func (r classRetryer) IsErrorRetryable(err error) bool {
	if classOf(err) == classFatal {
		return false
	}
	return r.RetryerV2.IsErrorRetryable(err)
}

func (r classRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	if attempt >= maxConnAttempts && classOf(err) == classUnreachable {
		return 0, &retry.MaxAttemptsError{Attempt: attempt, Err: err}
	}
	return r.RetryerV2.RetryDelay(attempt, err)
}
