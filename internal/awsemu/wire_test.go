package awsemu_test

// wire_test.go: the wire-protocol part (section 1) of the conformance
// matrix of docs/aws-behaviour.md, and the matrix's index.

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// TestRulesMatrix runs this package's cases of the conformance matrix.
func TestRulesMatrix(t *testing.T) { emutest.RunCases(t, conformance()) }

func conformance() []emutest.Case {
	return []emutest.Case{
		{Rule: "1", Name: "errors before dispatch carry a request ID", Run: func(t *testing.T, x *emutest.Env) {
			for _, tc := range []struct {
				service, body string
				header        map[string]string
				code          string
			}{
				{"ec2", "Version=2016-11-15", map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, "MissingAction"},
				{"ec2", "Action=DescribeImages&Version=2016-11-15&%zz", map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, "MalformedQueryString"},
				{"kms", "{}", map[string]string{"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService."}, "UnknownOperationException"},
			} {
				status, body := x.RawCall(emutest.AcctBuild, emutest.East, tc.service, tc.body, tc.header)
				if status != 400 || !strings.Contains(body, tc.code) {
					t.Fatalf("%s %q: HTTP %d %s, want %s", tc.service, tc.body, status, body, tc.code)
				}
				if tc.service == "ec2" && !regexp.MustCompile(`<RequestID>[0-9a-f-]{36}</RequestID>`).MatchString(body) {
					t.Fatalf("%s %q: no request ID in %s", tc.service, tc.body, body)
				}
				if tc.service == "kms" && !strings.Contains(body, `"message":"The operation TrentService. is not supported by AWS KMS."`) {
					t.Fatalf("KMS unknown operation without a message: %s", body)
				}
			}
		}},
		{Rule: "1", Name: "malformed Authorization header is IncompleteSignature", Run: func(t *testing.T, x *emutest.Env) {
			for _, tc := range []struct{ service, target, code string }{
				{"ec2", "", "IncompleteSignature"},
				{"kms", "TrentService.DescribeKey", "IncompleteSignatureException"},
			} {
				body := "Action=DescribeRegions&Version=2016-11-15"
				if tc.service == "kms" {
					body = `{"KeyId":"alias/amicrypt-build"}`
				}
				req, err := http.NewRequestWithContext(x.Ctx, http.MethodPost, x.Srv.URL()+"/", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIA1111111111111111/20260101/us-east-1/"+tc.service+"/aws4_request")
				if tc.target != "" {
					req.Header.Set("X-Amz-Target", tc.target)
					req.Header.Set("Content-Type", "application/x-amz-json-1.1")
				} else {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				got := html.UnescapeString(string(raw))
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(got, tc.code) || !strings.Contains(got, "Authorization header requires 'Signature' parameter.") {
					t.Fatalf("%s: HTTP %d %s, want 400 %s naming the missing Signature", tc.service, resp.StatusCode, got, tc.code)
				}
			}
		}},
		{Rule: "1", Name: "EC2 error body", Run: func(t *testing.T, x *emutest.Env) {
			status, body := x.RawCall(emutest.AcctBuild, emutest.East, "ec2", url.Values{"Action": {"DescribeImages"}, "Version": {"2016-11-15"}, "ImageId.1": {"ami-0123456789abcdef0"}}.Encode(),
				map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
			re := regexp.MustCompile(`(?s)<Response>\s*<Errors>\s*<Error>\s*<Code>InvalidAMIID\.NotFound</Code>\s*<Message>The image id ('|&#39;)\[ami-0123456789abcdef0\]('|&#39;) does not exist</Message>\s*</Error>\s*</Errors>\s*<RequestID>[^<]+</RequestID>\s*</Response>`)
			if status != 400 || !re.MatchString(body) {
				t.Fatalf("HTTP %d %s", status, body)
			}
		}},
		{Rule: "1", Name: "KMS error body", Run: func(t *testing.T, x *emutest.Env) {
			status, body := x.RawCall(emutest.AcctBuild, emutest.East, "kms", `{"KeyId":"alias/nope"}`,
				map[string]string{"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.DescribeKey"})
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			if status != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Type != "NotFoundException" || e.Message == "" {
				t.Fatalf("HTTP %d %s", status, body)
			}
		}},
		{Rule: "1", Name: "STS error body", Run: func(t *testing.T, x *emutest.Env) {
			role := "arn:aws:iam::222222222222:role/amicrypt-copy"
			status, body := x.RawCall(emutest.AcctT3, emutest.East, "sts", url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {role}, "RoleSessionName": {"s1"}}.Encode(),
				map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
			re := regexp.MustCompile(`(?s)<ErrorResponse xmlns="https://sts\.amazonaws\.com/doc/2011-06-15/">\s*<Error>\s*<Type>Sender</Type>\s*<Code>AccessDenied</Code>\s*<Message>User: arn:aws:iam::333333333333:user/admin is not authorized to perform: sts:AssumeRole on resource: ` +
				regexp.QuoteMeta(role) + `</Message>\s*</Error>\s*<RequestId>[^<]+</RequestId>\s*</ErrorResponse>`)
			if status != 403 || !re.MatchString(body) {
				t.Fatalf("HTTP %d %s", status, body)
			}
		}},
		{Rule: "1", Name: "SDK retries throttling and InternalError",
			Opts: awsemu.Options{Faults: &awsemu.FaultProfile{Rules: []awsemu.FaultRule{
				{Kind: awsemu.FaultThrottle, Action: "DescribeImages", Nth: []int{1}},
				{Kind: awsemu.FaultInternalError, Action: "DescribeSnapshots", Nth: []int{1}},
			}}},
			Run: func(t *testing.T, x *emutest.Env) {
				c := ec2.NewFromConfig(x.Srv.Config(x.Ctx, emutest.AcctBuild, emutest.East)) // the SDK's default retryer
				if _, err := c.DescribeImages(x.Ctx, &ec2.DescribeImagesInput{ImageIds: []string{emutest.SeedAMI}}); err != nil {
					t.Fatalf("DescribeImages after one throttle: %v", err)
				}
				if _, err := c.DescribeSnapshots(x.Ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}}); err != nil {
					t.Fatalf("DescribeSnapshots after one InternalError: %v", err)
				}
				for action, want := range map[string][2]any{"DescribeImages": {"RequestLimitExceeded", 503}, "DescribeSnapshots": {"InternalError", 500}} {
					entries := x.Srv.Emulator().Audit(awsemu.AuditFilter{Action: action})
					if len(entries) != 2 || entries[0].Outcome != want[0] || entries[0].HTTPStatus != want[1] || entries[1].Outcome != "ok" {
						t.Fatalf("%s audit: %+v, want %v then ok", action, entries, want)
					}
				}
			}},
		{Rule: "1", Name: "DryRun statuses",
			World: func(w *awsemu.World) {
				emutest.AddUser(w, emutest.AcctT3, awsemu.WorldUser{Name: "nocopy", AccessKey: "AKIA3333NOCOPY000000", SecretKey: "s", Deny: []string{"ec2:CopyImage"}})
			},
			Run: func(t *testing.T, x *emutest.Env) {
				c := x.EC2(emutest.AcctT3, emutest.East)
				_, err := c.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("dry-1"), DryRun: aws.Bool(true)})
				if emutest.APICode(err) != "DryRunOperation" || emutest.APIMessage(err) != "Request would have succeeded, but DryRun flag is set." || httpStatus(err) != 412 {
					t.Fatalf("allowed DryRun: HTTP %d %v", httpStatus(err), err)
				}
				denied := ec2.NewFromConfig(x.UserCfg(emutest.AcctT3, emutest.East, "AKIA3333NOCOPY000000", "s"))
				_, err = denied.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("dry-2"), DryRun: aws.Bool(true)})
				if emutest.APICode(err) != "UnauthorizedOperation" || httpStatus(err) != 403 {
					t.Fatalf("denied DryRun: HTTP %d %v", httpStatus(err), err)
				}
				if n := len(x.Srv.Emulator().Audit(awsemu.AuditFilter{Action: "CopyImage", Outcome: "ok"})); n != 0 {
					t.Fatalf("a dry run copied: %d ok CopyImage calls", n)
				}
			}},
	}
}
