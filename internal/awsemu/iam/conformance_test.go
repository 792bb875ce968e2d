package iam_test

// conformance_test.go: the IAM part of the conformance matrix of
// docs/aws-behaviour.md (its index is internal/awsemu/conformance_test.go),
// through the unmodified aws-sdk-go-v2 IAM client.

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// TestRulesMatrix runs this package's cases of the conformance matrix.
func TestRulesMatrix(t *testing.T) { emutest.RunCases(t, conformance()) }

const (
	profile     = "amicrypt-instance-store"
	profileARN  = "arn:aws:iam::111111111111:instance-profile/amicrypt-instance-store"
	profileRole = "arn:aws:iam::111111111111:role/amicrypt-instance-store"
	packer      = "arn:aws:iam::111111111111:user/packer"
)

func client(x *emutest.Env, account, region string) *iam.Client {
	return iam.NewFromConfig(x.Srv.Config(x.Ctx, account, region), func(o *iam.Options) { o.RetryMaxAttempts = 1 })
}

// policyDoc decodes an AssumeRolePolicyDocument as IAM returns it:
// URL-encoded JSON.
func policyDoc(t *testing.T, encoded string) map[string]any {
	t.Helper()
	if strings.ContainsAny(encoded, "{} \"") {
		t.Errorf("policy document %q is not URL-encoded", encoded)
	}
	plain, err := url.QueryUnescape(encoded)
	if err != nil {
		t.Fatalf("policy document %q: %v", encoded, err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(plain), &doc); err != nil {
		t.Fatalf("policy document %q: %v", plain, err)
	}
	return doc
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// withPolicies gives the build account's user identity policies.
func withPolicies(docs ...string) func(w *awsemu.World) {
	return func(w *awsemu.World) {
		for i := range w.Accounts {
			if w.Accounts[i].ID == emutest.AcctBuild {
				w.Accounts[i].Users[0].Policies = docs
			}
		}
	}
}

func conformance() []emutest.Case {
	return []emutest.Case{
		{Rule: "8.1", Name: "GetInstanceProfile of the world's profile", Run: func(t *testing.T, x *emutest.Env) {
			for _, region := range []string{emutest.East, "eu-west-1", "ap-southeast-3"} {
				out, err := client(x, emutest.AcctBuild, region).GetInstanceProfile(x.Ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(profile)})
				if err != nil {
					t.Fatalf("signed for %s: %v", region, err)
				}
				p := out.InstanceProfile
				if aws.ToString(p.InstanceProfileName) != profile || aws.ToString(p.Arn) != profileARN || aws.ToString(p.Path) != "/" ||
					!regexp.MustCompile(`^AIPA[A-Z2-7]{17}$`).MatchString(aws.ToString(p.InstanceProfileId)) || p.CreateDate == nil {
					t.Errorf("instance profile %+v", p)
				}
				if len(p.Roles) != 1 || aws.ToString(p.Roles[0].Arn) != profileRole || aws.ToString(p.Roles[0].RoleName) != profile ||
					!strings.HasPrefix(aws.ToString(p.Roles[0].RoleId), "AROA") {
					t.Fatalf("roles %+v", p.Roles)
				}
				trust := policyDoc(t, aws.ToString(p.Roles[0].AssumeRolePolicyDocument))
				stmt := trust["Statement"].([]any)[0].(map[string]any)
				if stmt["Principal"].(map[string]any)["Service"] != "ec2.amazonaws.com" || stmt["Action"] != "sts:AssumeRole" {
					t.Errorf("trust policy %v", trust)
				}
			}
			entries := x.Srv.Emulator().Audit(awsemu.AuditFilter{Service: "iam", Action: "GetInstanceProfile", Outcome: "ok"})
			if len(entries) != 3 || entries[0].Principal != packer || entries[0].Notes["instanceProfileArn"] != profileARN {
				t.Errorf("audit %+v", entries)
			}
		}},
		{Rule: "8.1", Name: "GetInstanceProfile NoSuchEntity", World: func(w *awsemu.World) {
			for i := range w.Accounts {
				if w.Accounts[i].ID == emutest.AcctBuild {
					w.Accounts[i].InstanceProfiles = append(w.Accounts[i].InstanceProfiles, awsemu.WorldInstanceProfile{Name: "build-only", Role: profile})
				}
			}
		}, Run: func(t *testing.T, x *emutest.Env) {
			tests := []struct{ account, name string }{
				{emutest.AcctBuild, "nope"},
				{emutest.AcctT2, "build-only"}, // names resolve in the caller's account
			}
			for _, tc := range tests {
				_, err := client(x, tc.account, emutest.East).GetInstanceProfile(x.Ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(tc.name)})
				var nse *types.NoSuchEntityException
				if !errors.As(err, &nse) || emutest.APIMessage(err) != "Instance Profile "+tc.name+" cannot be found." || httpStatus(err) != 404 {
					t.Errorf("%s asks for %s: %v (HTTP %d), want NoSuchEntity 404", tc.account, tc.name, err, httpStatus(err))
				}
			}
			if n := x.Srv.Calls(awsemu.AuditFilter{Service: "iam", Outcome: "NoSuchEntity"}); n != 2 {
				t.Errorf("audit: %d NoSuchEntity entries, want 2", n)
			}
		}},
		{Rule: "8.1", Name: "GetInstanceProfile validation", Run: func(t *testing.T, x *emutest.Env) {
			for _, n := range []string{"two words", strings.Repeat("p", 129)} {
				_, err := client(x, emutest.AcctBuild, emutest.East).GetInstanceProfile(x.Ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(n)})
				if emutest.APICode(err) != "ValidationError" || !strings.Contains(emutest.APIMessage(err), "'instanceProfileName'") {
					t.Errorf("name %q: %v, want ValidationError naming instanceProfileName", n, err)
				}
			}
		}},
		{Rule: "8.2", Name: "GetRole and ListInstanceProfilesForRole", World: func(w *awsemu.World) {
			for i := range w.Accounts {
				if w.Accounts[i].ID == emutest.AcctBuild {
					w.Accounts[i].InstanceProfiles = append(w.Accounts[i].InstanceProfiles, awsemu.WorldInstanceProfile{Name: "amicrypt-second", Role: profile})
				}
			}
		}, Run: func(t *testing.T, x *emutest.Env) {
			role := emutest.Must[*iam.GetRoleOutput](t, "GetRole")(client(x, emutest.AcctT4, emutest.East).GetRole(x.Ctx, &iam.GetRoleInput{RoleName: aws.String("amicrypt-copy")})).Role
			if aws.ToString(role.Arn) != "arn:aws:iam::444444444444:role/amicrypt-copy" || aws.ToInt32(role.MaxSessionDuration) != 3600 {
				t.Errorf("role %+v", role)
			}
			stmt := policyDoc(t, aws.ToString(role.AssumeRolePolicyDocument))["Statement"].([]any)[0].(map[string]any)
			if stmt["Principal"].(map[string]any)["AWS"] != "arn:aws:iam::111111111111:root" ||
				stmt["Condition"].(map[string]any)["StringEquals"].(map[string]any)["sts:ExternalId"] != "amicrypt-demo" {
				t.Errorf("trust statement %v", stmt)
			}
			_, err := client(x, emutest.AcctT4, emutest.East).GetRole(x.Ctx, &iam.GetRoleInput{RoleName: aws.String("nope")})
			if emutest.APICode(err) != "NoSuchEntity" || emutest.APIMessage(err) != "The role with name nope cannot be found." {
				t.Errorf("GetRole nope: %v", err)
			}

			c := client(x, emutest.AcctBuild, emutest.East)
			var names []string
			pages := iam.NewListInstanceProfilesForRolePaginator(c, &iam.ListInstanceProfilesForRoleInput{RoleName: aws.String(profile), MaxItems: aws.Int32(1)})
			for pages.HasMorePages() {
				page := emutest.Must[*iam.ListInstanceProfilesForRoleOutput](t, "ListInstanceProfilesForRole")(pages.NextPage(x.Ctx))
				if len(page.InstanceProfiles) != 1 {
					t.Fatalf("a page of MaxItems 1 has %d profiles", len(page.InstanceProfiles))
				}
				names = append(names, aws.ToString(page.InstanceProfiles[0].InstanceProfileName))
			}
			if strings.Join(names, ",") != "amicrypt-instance-store,amicrypt-second" {
				t.Errorf("profiles of the role: %v", names)
			}
			none := emutest.Must[*iam.ListInstanceProfilesForRoleOutput](t, "ListInstanceProfilesForRole")(c.ListInstanceProfilesForRole(x.Ctx, &iam.ListInstanceProfilesForRoleInput{RoleName: aws.String("amicrypt-build")}))
			if len(none.InstanceProfiles) != 0 || none.IsTruncated {
				t.Errorf("a role without profiles: %+v", none)
			}
			_, err = c.ListInstanceProfilesForRole(x.Ctx, &iam.ListInstanceProfilesForRoleInput{RoleName: aws.String("nope")})
			if emutest.APICode(err) != "NoSuchEntity" || emutest.APIMessage(err) != "The role with name nope cannot be found." {
				t.Errorf("ListInstanceProfilesForRole nope: %v", err)
			}
		}},
		{Rule: "8.3", Name: "IAM calls follow the caller's identity policies", World: withPolicies(
			`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetInstanceProfile","Resource":"arn:aws:iam::111111111111:instance-profile/amicrypt-*"},
			  {"Effect":"Deny","Action":"iam:GetRole","Resource":"*"}]}`),
			Run: func(t *testing.T, x *emutest.Env) {
				c := client(x, emutest.AcctBuild, emutest.East)
				if _, err := c.GetInstanceProfile(x.Ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(profile)}); err != nil {
					t.Fatalf("allowed by a resource-scoped statement: %v", err)
				}
				tests := []struct {
					name string
					call func() error
					want string
				}{
					{"outside the allowed resources", func() error {
						_, err := c.GetInstanceProfile(x.Ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String("other")})
						return err
					}, "User: " + packer + " is not authorized to perform: iam:GetInstanceProfile on resource: instance profile other because no identity-based policy allows the iam:GetInstanceProfile action"},
					{"explicit deny", func() error {
						_, err := c.GetRole(x.Ctx, &iam.GetRoleInput{RoleName: aws.String(profile)})
						return err
					}, "User: " + packer + " is not authorized to perform: iam:GetRole on resource: role " + profile + " with an explicit deny in an identity-based policy"},
					{"no statement", func() error {
						_, err := c.ListInstanceProfilesForRole(x.Ctx, &iam.ListInstanceProfilesForRoleInput{RoleName: aws.String(profile)})
						return err
					}, "User: " + packer + " is not authorized to perform: iam:ListInstanceProfilesForRole on resource: role " + profile + " because no identity-based policy allows the iam:ListInstanceProfilesForRole action"},
				}
				for _, tc := range tests {
					err := tc.call()
					if emutest.APICode(err) != "AccessDenied" || emutest.APIMessage(err) != tc.want || httpStatus(err) != 403 {
						t.Errorf("%s: %v (HTTP %d)\nwant AccessDenied 403 %q", tc.name, err, httpStatus(err), tc.want)
					}
				}
			}},
		{Rule: "8.3", Name: "IAM wire format", Run: func(t *testing.T, x *emutest.Env) {
			form := map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
			status, body := x.RawCall(emutest.AcctBuild, emutest.East, "iam", "Action=GetInstanceProfile&Version=2010-05-08&InstanceProfileName="+profile, form)
			ok := regexp.MustCompile(`(?s)^<GetInstanceProfileResponse xmlns="https://iam\.amazonaws\.com/doc/2010-05-08/"><GetInstanceProfileResult><InstanceProfile>.*` +
				`</InstanceProfile></GetInstanceProfileResult><ResponseMetadata><RequestId>[0-9a-f-]{36}</RequestId></ResponseMetadata></GetInstanceProfileResponse>$`)
			if status != 200 || !ok.MatchString(body) || !strings.Contains(body, "<Roles><member>") {
				t.Errorf("HTTP %d\n%s", status, body)
			}
			status, body = x.RawCall(emutest.AcctBuild, emutest.East, "iam", "Action=GetInstanceProfile&Version=2010-05-08&InstanceProfileName=nope", form)
			notFound := regexp.MustCompile(`(?s)<ErrorResponse xmlns="https://iam\.amazonaws\.com/doc/2010-05-08/">\s*<Error>\s*<Type>Sender</Type>\s*<Code>NoSuchEntity</Code>\s*` +
				`<Message>Instance Profile nope cannot be found\.</Message>\s*</Error>\s*<RequestId>[0-9a-f-]{36}</RequestId>\s*</ErrorResponse>`)
			if status != 404 || !notFound.MatchString(body) {
				t.Errorf("HTTP %d\n%s", status, body)
			}
			// Unsigned, to the global endpoint's host name: IAM's own error.
			req, err := http.NewRequestWithContext(x.Ctx, http.MethodPost, x.Srv.URL()+"/", strings.NewReader("Action=GetInstanceProfile&Version=2010-05-08&InstanceProfileName="+profile))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "iam.amazonaws.com"
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(raw), `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">`) ||
				!strings.Contains(string(raw), "<Code>MissingAuthenticationToken</Code>") {
				t.Errorf("unsigned: HTTP %d\n%s", resp.StatusCode, raw)
			}
			status, body = x.RawCall(emutest.AcctBuild, emutest.East, "iam", "Action=CreateRole&Version=2010-05-08&RoleName=x", form)
			if status != 400 || !strings.Contains(body, "<Code>InvalidAction</Code>") {
				t.Errorf("an action the emulator does not serve: HTTP %d\n%s", status, body)
			}
		}},
	}
}
