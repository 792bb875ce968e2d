package awsauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// insecureHTTPClient is the SDK's HTTP client with TLS verification off
// (insecure_skip_tls_verify).
func insecureHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for by insecure_skip_tls_verify
	})
}

// encodedMessageMarker precedes the encoded part of an EC2
// UnauthorizedOperation message.
const encodedMessageMarker = "Encoded authorization failure message:"

// DecodedAuthorizationError is an API error whose encoded authorization
// message was decoded with sts:DecodeAuthorizationMessage. It unwraps to the
// API error, so errors.As(err, &smithy.APIError) still sees its code.
type DecodedAuthorizationError struct {
	Err     error
	Decoded string // the JSON document STS returned
}

func (e *DecodedAuthorizationError) Error() string {
	return e.Err.Error() + "\ndecoded authorization failure message: " + e.Decoded
}

func (e *DecodedAuthorizationError) Unwrap() error { return e.Err }

// decoder is the part of the STS client decodeAuthorizationMessages uses.
type decoder interface {
	DecodeAuthorizationMessage(context.Context, *sts.DecodeAuthorizationMessageInput, ...func(*sts.Options)) (*sts.DecodeAuthorizationMessageOutput, error)
}

// decodeAuthorizationMessages is a middleware for every client of a config
// (decode_authorization_messages): an error whose message carries an encoded
// authorization failure is returned with that message decoded. A failure to
// decode leaves the error as it was and says why.
func decodeAuthorizationMessages(client decoder) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("amicryptDecodeAuthorizationMessages",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				var apiErr smithy.APIError
				if err == nil || !errors.As(err, &apiErr) {
					return out, md, err
				}
				_, encoded, found := strings.Cut(apiErr.ErrorMessage(), encodedMessageMarker)
				encoded = strings.TrimSpace(encoded)
				if !found || encoded == "" {
					return out, md, err
				}
				dec, derr := client.DecodeAuthorizationMessage(ctx, &sts.DecodeAuthorizationMessageInput{EncodedMessage: aws.String(encoded)})
				if derr != nil {
					return out, md, fmt.Errorf("%w (decode_authorization_messages: sts:DecodeAuthorizationMessage failed: %w)", err, derr)
				}
				return out, md, &DecodedAuthorizationError{Err: err, Decoded: aws.ToString(dec.DecodedMessage)}
			}), middleware.Before)
	}
}
