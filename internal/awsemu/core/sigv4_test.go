package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestVerifySigV4 checks the hand-written verifier against requests signed
// by aws-sdk-go-v2's signer, an independent implementation.
func TestVerifySigV4(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKIA1111111111111111", SecretAccessKey: "emu-secret-111111111111"}
	tests := []struct {
		name   string
		method string
		url    string
		body   string
		header map[string]string
		tamper func(r *http.Request, body *string)
		secret string
		want   bool
	}{
		{name: "EC2 form POST", method: "POST", url: "http://127.0.0.1:4566/", body: "Action=DescribeImages&Owner.1=amazon&Version=2016-11-15",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, want: true},
		{name: "GET with a query needing encoding", method: "GET", url: "http://127.0.0.1:4566/?Filter.1.Value.1=al2023%2A%20x&Action=DescribeImages&a=%2F~",
			want: true},
		{name: "header with folded spaces", method: "POST", url: "http://127.0.0.1:4566/", body: "{}",
			header: map[string]string{"X-Amz-Target": "TrentService.ListKeys", "X-Custom": "a   b  c"}, want: true},
		{name: "wrong secret", method: "POST", url: "http://127.0.0.1:4566/", body: "Action=X", secret: "other", want: false},
		{name: "body changed after signing", method: "POST", url: "http://127.0.0.1:4566/", body: "Action=X",
			tamper: func(_ *http.Request, body *string) { *body = "Action=Y" }, want: false},
		{name: "query changed after signing", method: "GET", url: "http://127.0.0.1:4566/?Action=X",
			tamper: func(r *http.Request, _ *string) { r.URL.RawQuery = "Action=Y" }, want: false},
		{name: "signed header changed", method: "POST", url: "http://127.0.0.1:4566/", body: "{}", header: map[string]string{"X-Amz-Target": "TrentService.ListKeys"},
			tamper: func(r *http.Request, _ *string) { r.Header.Set("X-Amz-Target", "TrentService.Decrypt") }, want: false},
	}
	signer := v4.NewSigner()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			sum := sha256.Sum256([]byte(tc.body))
			if err := signer.SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "ec2", "eu-west-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			body := tc.body
			if tc.tamper != nil {
				tc.tamper(r, &body)
			}
			auth, err := ParseSigV4(r.Header.Get("Authorization"))
			if err != nil {
				t.Fatal(err)
			}
			if auth.AccessKey != creds.AccessKeyID || auth.Region != "eu-west-1" || auth.Service != "ec2" {
				t.Fatalf("scope: %+v", auth)
			}
			secret := creds.SecretAccessKey
			if tc.secret != "" {
				secret = tc.secret
			}
			if got := VerifySigV4(r, []byte(body), auth, secret); got != tc.want {
				t.Fatalf("verify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseSigV4Errors(t *testing.T) {
	for _, h := range []string{
		"",
		"AWS AKIA:sig",
		"AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/ec2, SignedHeaders=host, Signature=ab",
		"AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host",
	} {
		if _, err := ParseSigV4(h); err == nil {
			t.Errorf("%q: parsed", h)
		}
	}
}
