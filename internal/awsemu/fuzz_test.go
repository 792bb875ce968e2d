package awsemu_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// FuzzRequestDecoding sends properly signed requests with fuzzed actions and
// bodies to every service: the emulator must answer each with an AWS-shaped
// response (XML for EC2 and STS, JSON for KMS, a code on every error) and
// never panic.
func FuzzRequestDecoding(f *testing.F) {
	for _, seed := range []struct {
		service uint8
		action  string
		body    string
	}{
		{0, "DescribeImages", "ImageId.1=ami-0a1b2c3d4e5f60001&Filter.1.Name=name&Filter.1.Value.1=al2023*"},
		{0, "CopyImage", "SourceImageId=ami-0a1b2c3d4e5f60001&SourceRegion=us-east-1&Name=x&Encrypted=true&KmsKeyId=alias/amicrypt-build"},
		{0, "RunInstances", "ImageId=ami-0a1b2c3d4e5f60001&MinCount=1&MaxCount=1&BlockDeviceMapping.1.DeviceName=/dev/xvda&BlockDeviceMapping.1.Ebs.VolumeSize=-1"},
		{0, "ModifyImageAttribute", "ImageId=ami-0a1b2c3d4e5f60001&LaunchPermission.Add.1.UserId=%zz"},
		{1, "CreateGrant", `{"KeyId":"alias/amicrypt-build","GranteePrincipal":"222222222222","Operations":["Decrypt"]}`},
		{1, "Decrypt", `{"CiphertextBlob":"QUtFMQ=="}`},
		{1, "GenerateDataKey", `{"KeyId":"alias/amicrypt-build","KeySpec":"AES_256","EncryptionContext":{"a":"b"}}`},
		{1, "Encrypt", `{"KeyId":1}`},
		{2, "AssumeRole", "RoleArn=arn:aws:iam::222222222222:role/amicrypt-copy&RoleSessionName=s&DurationSeconds=99999999999"},
		{2, "GetCallerIdentity", ""},
	} {
		f.Add(seed.service, seed.action, []byte(seed.body))
	}
	emu, err := awsemu.New(awsemu.Options{TimeScale: 0.001})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = emu.Close() })
	ak, sk, err := emu.Credentials("111111111111")
	if err != nil {
		f.Fatal(err)
	}
	handler := emu.Handler()
	signer := v4.NewSigner()
	f.Fuzz(func(t *testing.T, serviceN uint8, action string, body []byte) {
		service := []string{"ec2", "kms", "sts"}[int(serviceN)%3]
		var payload []byte
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
		switch service {
		case "kms":
			payload = body
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", "TrentService."+action)
		default:
			version := "2016-11-15"
			if service == "sts" {
				version = "2011-06-15"
			}
			payload = append([]byte("Action="+action+"&Version="+version+"&"), body...)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		}
		req.Body = ioNopCloser(payload)
		req.ContentLength = int64(len(payload))
		sum := sha256.Sum256(payload)
		if err := signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, req,
			hex.EncodeToString(sum[:]), service, "us-east-1", time.Now()); err != nil {
			t.Skip("unsignable request")
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		out := rec.Body.Bytes()
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Code == http.StatusOK {
			return
		}
		switch service {
		case "kms":
			var e struct {
				Type string `json:"__type"`
			}
			if json.Unmarshal(out, &e) != nil || e.Type == "" {
				t.Fatalf("KMS error %d is not AWS-shaped: %q", rec.Code, out)
			}
		default:
			var e struct {
				Code  string `xml:"Errors>Error>Code"`
				Code2 string `xml:"Error>Code"`
			}
			if xml.Unmarshal(out, &e) != nil || e.Code+e.Code2 == "" {
				t.Fatalf("%s error %d is not AWS-shaped: %q", strings.ToUpper(service), rec.Code, out)
			}
		}
	})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func ioNopCloser(b []byte) nopCloser { return nopCloser{bytes.NewReader(b)} }
