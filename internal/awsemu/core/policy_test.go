package core

import (
	"strings"
	"testing"
)

func TestPolicyEvaluation(t *testing.T) {
	const acct = "111111111111"
	user := "arn:aws:iam::111111111111:user/packer"
	key := "arn:aws:kms:us-east-1:111111111111:key/k1"
	req := func(action, resource string, ctx map[string][]string) PolicyRequest {
		return PolicyRequest{Account: acct, Principal: user, PrincipalIAM: user, Action: action, Resource: resource, Context: ctx}
	}
	tests := []struct {
		name   string
		doc    string
		req    PolicyRequest
		allow  bool
		deny   bool
		direct bool
	}{
		{"action wildcard and resource ARN", `{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt*","Resource":"arn:aws:kms:us-east-1:111111111111:key/*"}]}`,
			req("kms:Decrypt", key, nil), true, false, true},
		{"resource of another region", `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:eu-west-1:*:key/*"}]}`,
			req("kms:Decrypt", key, nil), false, false, false},
		{"NotAction", `{"Statement":[{"Effect":"Allow","NotAction":["kms:ScheduleKeyDeletion"],"Resource":"*"}]}`,
			req("kms:ScheduleKeyDeletion", key, nil), false, false, false},
		{"explicit deny wins", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}`,
			req("kms:Decrypt", key, nil), true, true, true},
		{"encryption context condition met", `{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:amicrypt:instance-arn":"arn:aws:ec2:us-east-1:111111111111:instance/i-1"}}}]}`,
			req("kms:Decrypt", key, map[string][]string{"kms:encryptioncontext:amicrypt:instance-arn": {"arn:aws:ec2:us-east-1:111111111111:instance/i-1"}}), true, false, true},
		{"encryption context of another instance", `{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:amicrypt:instance-arn":"arn:aws:ec2:us-east-1:111111111111:instance/i-1"}}}]}`,
			req("kms:Decrypt", key, map[string][]string{"kms:encryptioncontext:amicrypt:instance-arn": {"arn:aws:ec2:us-east-1:111111111111:instance/i-2"}}), false, false, false},
		{"absent key fails a positive operator", `{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"StringLike":{"kms:EncryptionContext:amicrypt:instance-arn":"*"}}}]}`,
			req("kms:Decrypt", key, nil), false, false, false},
		{"IfExists passes an absent key", `{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEqualsIfExists":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}}]}`,
			req("kms:Decrypt", key, nil), true, false, true},
		{"Bool GrantIsForAWSResource", `{"Statement":[{"Effect":"Allow","Action":"kms:CreateGrant","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":true}}}]}`,
			req("kms:CreateGrant", key, map[string][]string{"kms:grantisforawsresource": {"false"}}), false, false, false},
		{"ForAllValues keys", `{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["a","b"]}}}]}`,
			req("kms:Decrypt", key, map[string][]string{"kms:encryptioncontextkeys": {"a", "c"}}), false, false, false},
		{"ForAnyValue keys", `{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":["c"]}}}]}`,
			req("kms:Decrypt", key, map[string][]string{"kms:encryptioncontextkeys": {"a", "c"}}), true, false, true},
		{"StringNotEquals with an absent key", `{"Statement":[{"Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"StringNotEquals":{"aws:ResourceTag/team":"pci"}}}]}`,
			req("kms:Decrypt", key, nil), false, true, false},
		{"key policy naming the account delegates", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"}]}`,
			req("kms:Decrypt", key, nil), true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p *Policy
			var err error
			if tc.name == "key policy naming the account delegates" {
				p, err = ParsePolicy(tc.doc)
			} else {
				p, err = ParseIdentityPolicy(tc.doc)
			}
			if err != nil {
				t.Fatal(err)
			}
			ev := p.Eval(tc.req)
			if ev.Allowed != tc.allow || ev.Denied != tc.deny || ev.Direct != tc.direct {
				t.Fatalf("got %+v, want allowed=%v denied=%v direct=%v", ev, tc.allow, tc.deny, tc.direct)
			}
		})
	}
}

func TestParseIdentityPolicyErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"Statement":[{"Effect":"Allow","Action":"kms:*"}]}`, "no Resource"},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`, "has a Principal"},
		{`{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"NumericLessThan":{"x":"1"}}}]}`, `operator "NumericLessThan"`},
		{`{"Statement":[{"Effect":"Maybe","Action":"kms:*","Resource":"*"}]}`, "must be Allow or Deny"},
	} {
		if _, err := ParseIdentityPolicy(tc.doc); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
}
