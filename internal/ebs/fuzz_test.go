package ebs

import (
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// The parsers of user input never panic, and what they accept has the
// shape they promise. Seeds are in testdata/fuzz; run longer with
// go test -fuzz=FuzzParseKeyRef ./internal/ebs/.

func FuzzParseKeyRef(f *testing.F) {
	for _, s := range []string{
		"alias/amicrypt-target", "1234abcd-12ab-34cd-56ef-1234567890ab", "mrk-1234abcd12ab34cd56ef1234567890ab",
		"arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"arn:aws:kms:eu-west-1:222222222222:alias/aws/ebs", "arn:aws-us-gov:kms:us-gov-west-1:222222222222:key/mrk-1234abcd12ab34cd56ef1234567890ab",
		"", "alias/", "arn:aws:kms::222222222222:key/x", "alias/aws/ebs",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		r, err := ParseKeyRef(ref)
		if err != nil {
			if !strings.Contains(err.Error(), "is not a KMS key reference") {
				t.Fatalf("ParseKeyRef(%q): error %q does not say what is accepted", ref, err)
			}
			return
		}
		_ = r.AWSManagedAlias()
		if r.Raw != ref {
			t.Fatalf("ParseKeyRef(%q).Raw = %q", ref, r.Raw)
		}
		switch r.Kind {
		case KeyRefARN, KeyRefAliasARN:
			if !ValidAccountID(r.Account) || !awsauth.ValidRegion(r.Region) || !strings.Contains(ref, ":"+r.Region+":"+r.Account+":") {
				t.Fatalf("ParseKeyRef(%q) = %+v: account or region not from the ARN", ref, r)
			}
			if r.Kind == KeyRefARN && r.AWSManagedAlias() {
				t.Fatalf("ParseKeyRef(%q): a key ARN taken for an AWS-managed alias", ref)
			}
		case KeyRefAlias:
			if !strings.HasPrefix(ref, "alias/") || len(ref) <= len("alias/") || r.Account != "" || r.Region != "" {
				t.Fatalf("ParseKeyRef(%q) = %+v: not an alias name", ref, r)
			}
		case KeyRefID:
			if (len(ref) != 36 && !strings.HasPrefix(ref, "mrk-")) || r.Account != "" {
				t.Fatalf("ParseKeyRef(%q) = %+v: not a key ID", ref, r)
			}
		default:
			t.Fatalf("ParseKeyRef(%q): unknown kind %q", ref, r.Kind)
		}
	})
}

func FuzzValidAccountID(f *testing.F) {
	for _, s := range []string{"222222222222", "2222", "22222222222a", "٢٢٢٢٢٢٢٢٢٢٢٢", " 222222222222", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) == 12
		for i := 0; i < len(s) && want; i++ {
			want = s[i] >= '0' && s[i] <= '9'
		}
		if got := ValidAccountID(s); got != want {
			t.Fatalf("ValidAccountID(%q) = %v, want %v", s, got, want)
		}
	})
}

func FuzzValidOrgARN(f *testing.F) {
	for _, s := range []string{
		"arn:aws:organizations::111111111111:organization/o-abcdefghij",
		"arn:aws:organizations::111111111111:ou/o-abcdefghij/ou-ab12-cdefgh34",
		"arn:aws:organizations::1111:organization/o-a", "o-abcdefghij", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		org, ou := ValidOrgARN(s), ValidOUARN(s)
		if org && ou {
			t.Fatalf("%q is both an organization and an OU ARN", s)
		}
		if !org && !ou {
			return
		}
		f := strings.Split(s, ":")
		if len(f) != 6 || !strings.HasPrefix(f[1], "aws") || f[2] != "organizations" || f[3] != "" || !ValidAccountID(f[4]) {
			t.Fatalf("%q accepted (org %v, ou %v) without the ARN's shape", s, org, ou)
		}
		if org && !strings.HasPrefix(f[5], "organization/o-") || ou && !strings.HasPrefix(f[5], "ou/o-") {
			t.Fatalf("%q accepted (org %v, ou %v) with resource %q", s, org, ou, f[5])
		}
	})
}
