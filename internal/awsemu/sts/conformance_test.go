package sts_test

// conformance_test.go: the STS part of the conformance matrix of
// docs/aws-behaviour.md (its index is internal/awsemu/conformance_test.go).

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

const marker = "Encoded authorization failure message: "

// encodedFrom is the encoded message at the end of an EC2 error.
func encodedFrom(t *testing.T, err error) string {
	t.Helper()
	_, enc, ok := strings.Cut(emutest.APIMessage(err), marker)
	if emutest.APICode(err) != "UnauthorizedOperation" || !ok || enc == "" {
		t.Fatalf("want UnauthorizedOperation with an encoded message, got %v", err)
	}
	return enc
}

// decoded is the document DecodeAuthorizationMessage returns, in part.
type decoded struct {
	Allowed           bool `json:"allowed"`
	ExplicitDeny      bool `json:"explicitDeny"`
	MatchedStatements struct {
		Items []struct {
			StatementID string `json:"statementId"`
			Effect      string `json:"effect"`
			Actions     struct {
				Items []struct{ Value string } `json:"items"`
			} `json:"actions"`
		} `json:"items"`
	} `json:"matchedStatements"`
	Failures struct {
		Items []any `json:"items"`
	} `json:"failures"`
	Context struct {
		Principal  struct{ ID, Name, Arn string } `json:"principal"`
		Action     string                         `json:"action"`
		Resource   string                         `json:"resource"`
		Conditions struct {
			Items []struct {
				Key    string `json:"key"`
				Values struct {
					Items []struct{ Value string } `json:"items"`
				} `json:"values"`
			} `json:"items"`
		} `json:"conditions"`
	} `json:"context"`
}

// decodeWorld: the build account's user may describe and decode and is
// denied launching; target 2's user has policies without sts, target 3's
// a deny list.
func decodeWorld(w *awsemu.World) {
	for i := range w.Accounts {
		switch w.Accounts[i].ID {
		case emutest.AcctBuild:
			w.Accounts[i].Users[0].Policies = []string{`{"Version":"2012-10-17","Statement":[
				{"Effect":"Allow","Action":["ec2:Describe*","sts:DecodeAuthorizationMessage"],"Resource":"*"},
				{"Sid":"NoLaunch","Effect":"Deny","Action":"ec2:RunInstances","Resource":"*"}]}`}
		case emutest.AcctT2:
			w.Accounts[i].Users[0].Policies = []string{`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}`}
		case emutest.AcctT3:
			w.Accounts[i].Users[0].Deny = []string{"ec2:CreateKeyPair"}
		}
	}
}

// TestRulesMatrix runs this package's cases of the conformance matrix.
func TestRulesMatrix(t *testing.T) { emutest.RunCases(t, conformance()) }

func conformance() []emutest.Case {
	return []emutest.Case{
		{Rule: "8.5", Name: "DecodeAuthorizationMessage of an EC2 denial", World: decodeWorld, Run: func(t *testing.T, x *emutest.Env) {
			run := func(account string) error {
				_, err := x.EC2(account, emutest.East).RunInstances(x.Ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
				return err
			}
			decode := func(account, enc string) (decoded, error) {
				out, err := sts.NewFromConfig(x.Srv.Config(x.Ctx, account, "eu-west-1")).DecodeAuthorizationMessage(x.Ctx, &sts.DecodeAuthorizationMessageInput{EncodedMessage: aws.String(enc)})
				var d decoded
				if err == nil {
					if jerr := json.Unmarshal([]byte(aws.ToString(out.DecodedMessage)), &d); jerr != nil {
						t.Fatalf("decoded message %q: %v", aws.ToString(out.DecodedMessage), jerr)
					}
				}
				return d, err
			}
			// An explicit deny, decoded by the caller.
			enc := encodedFrom(t, run(emutest.AcctBuild))
			d, err := decode(emutest.AcctBuild, enc)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed || !d.ExplicitDeny || len(d.MatchedStatements.Items) != 1 || d.MatchedStatements.Items[0].StatementID != "NoLaunch" ||
				d.MatchedStatements.Items[0].Effect != "DENY" || d.MatchedStatements.Items[0].Actions.Items[0].Value != "ec2:RunInstances" || d.Failures.Items == nil {
				t.Errorf("decision %+v", d)
			}
			p := d.Context.Principal
			if p.Arn != "arn:aws:iam::111111111111:user/packer" || p.Name != "packer" || !strings.HasPrefix(p.ID, "AIDA") ||
				d.Context.Action != "ec2:RunInstances" || d.Context.Resource != "arn:aws:ec2:us-east-1:111111111111:instance/*" {
				t.Errorf("context %+v", d.Context)
			}
			region := ""
			for _, c := range d.Context.Conditions.Items {
				if c.Key == "aws:Region" {
					region = c.Values.Items[0].Value
				}
			}
			if region != emutest.East {
				t.Errorf("aws:Region of the context = %q", region)
			}
			// An implicit deny: no statement matched.
			_, err = x.EC2(emutest.AcctBuild, emutest.East).CreateSecurityGroup(x.Ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("g"), Description: aws.String("g")})
			if d, err := decode(emutest.AcctBuild, encodedFrom(t, err)); err != nil || d.ExplicitDeny || len(d.MatchedStatements.Items) != 0 || d.Context.Action != "ec2:CreateSecurityGroup" {
				t.Errorf("implicit deny decoded: %+v, %v", d, err)
			}
			// A world deny list is an explicit deny too.
			_, err = x.EC2(emutest.AcctT3, emutest.East).CreateKeyPair(x.Ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k")})
			if d, err := decode(emutest.AcctT3, encodedFrom(t, err)); err != nil || !d.ExplicitDeny || len(d.MatchedStatements.Items) != 1 {
				t.Errorf("deny list decoded: %+v, %v", d, err)
			}

			tests := []struct {
				name, account, message, code, text string
			}{
				{"without sts:DecodeAuthorizationMessage", emutest.AcctT2, enc, "AccessDenied",
					"User: arn:aws:iam::222222222222:user/admin is not authorized to perform: sts:DecodeAuthorizationMessage because no identity-based policy allows the sts:DecodeAuthorizationMessage action"},
				{"another account's message", emutest.AcctT3, enc, "InvalidAuthorizationMessageException", ""},
				{"not a message", emutest.AcctBuild, "not-a-message", "InvalidAuthorizationMessageException", ""},
				{"a message altered", emutest.AcctBuild, enc[:len(enc)-2] + "AA", "InvalidAuthorizationMessageException", ""},
			}
			for _, tc := range tests {
				_, err := decode(tc.account, tc.message)
				if emutest.APICode(err) != tc.code || tc.text != "" && emutest.APIMessage(err) != tc.text {
					t.Errorf("%s: %v, want %s %q", tc.name, err, tc.code, tc.text)
				}
			}
		}},
		{Rule: "8.5", Name: "encoded messages decode after a restart", Run: func(t *testing.T, x *emutest.Env) {
			w := emutest.DefaultWorldWith(t, func(w *awsemu.World) {
				for i := range w.Accounts {
					if w.Accounts[i].ID == emutest.AcctBuild {
						w.Accounts[i].Users[0].Deny = []string{"ec2:CreateKeyPair"}
					}
				}
			})
			state := filepath.Join(t.TempDir(), "state.json")
			first := emutest.Start(t, awsemu.Options{World: w, StatePath: state})
			_, err := ec2.NewFromConfig(first.Config(x.Ctx, emutest.AcctBuild, emutest.East)).CreateKeyPair(x.Ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k")})
			enc := encodedFrom(t, err)
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			second := emutest.Start(t, awsemu.Options{World: w, StatePath: state})
			out, err := sts.NewFromConfig(second.Config(x.Ctx, emutest.AcctBuild, emutest.East)).DecodeAuthorizationMessage(x.Ctx, &sts.DecodeAuthorizationMessageInput{EncodedMessage: aws.String(enc)})
			if err != nil || !strings.Contains(aws.ToString(out.DecodedMessage), `"action":"ec2:CreateKeyPair"`) {
				t.Fatalf("after a restart: %v", err)
			}
		}},
		{Rule: "3.15", Name: "AssumeRole denial text", Run: func(t *testing.T, x *emutest.Env) {
			role := "arn:aws:iam::444444444444:role/amicrypt-copy"
			_, err := sts.NewFromConfig(x.Srv.Config(x.Ctx, emutest.AcctBuild, emutest.East)).AssumeRole(x.Ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("no-external-id")})
			want := "User: arn:aws:iam::111111111111:user/packer is not authorized to perform: sts:AssumeRole on resource: " + role
			if emutest.APICode(err) != "AccessDenied" || emutest.APIMessage(err) != want {
				t.Fatalf("got %v\nwant AccessDenied %q", err, want)
			}
		}},
	}
}
