package copy

import (
	"slices"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// The parsers of what comes from outside (an input artifact's ID, grant
// names and tags found in AWS) never panic, and what they accept has the
// shape they promise. Seeds are in testdata/fuzz.

func FuzzParseArtifact(f *testing.F) {
	for _, s := range []string{
		"us-east-1:ami-0a1b2c3d4e5f60001", "eu-west-1:ami-0a1b2c3d,us-east-1:ami-0a1b2c3d4e5f60001",
		"us-east-1:ami-0a1b2c3d,us-east-1:ami-0a1b2c3e", "", " , ", "ami-0a1b2c3d", "us-east-1:ami-0A1B2C3D", "us-gov-west-1:ami-0a1b2c3d",
	} {
		f.Add("amicrypt.ebs", s)
	}
	f.Fuzz(func(t *testing.T, builderID, id string) {
		amis, err := parseArtifact(fakeArtifact{builderID, id})
		if err != nil {
			if !strings.Contains(err.Error(), "amicrypt-copy:") {
				t.Fatalf("parseArtifact(%q): error %q does not name amicrypt-copy", id, err)
			}
			return
		}
		if len(amis) == 0 || len(amis) > strings.Count(id, ",")+1 {
			t.Fatalf("parseArtifact(%q) = %v", id, amis)
		}
		seen := map[string]bool{}
		for i, a := range amis {
			if !awsauth.ValidRegion(a.Region) || !ebs.ValidAMIID(a.ImageID) || seen[a.Region] || !strings.Contains(id, a.Region+":"+a.ImageID) {
				t.Fatalf("parseArtifact(%q) = %v: entry %d is not one region:ami pair of the ID", id, amis, i)
			}
			seen[a.Region] = true
		}
		if !slices.IsSortedFunc(amis, func(a, b sourceAMI) int { return strings.Compare(a.Region, b.Region) }) {
			t.Fatalf("parseArtifact(%q) = %v: not sorted by region", id, amis)
		}
	})
}

func FuzzParseGrantName(f *testing.F) {
	for _, s := range []string{
		"amicrypt-copy:k3j9x2m1p0:3f9a1c2b7d4e:222222222222:ami-0abc1234:launch:volume",
		"amicrypt-copy:k3j9x2m1p0:3f9a1c2b7d4e:222222222222:ami-0abc1234",
		"amicrypt-copy-ami-0abc1234-222222222222-launch", "amicrypt-autoscaling", "amicrypt-copy:", "amicrypt-copy-ami-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		g, ok := parseGrantName(name)
		if !ok {
			return
		}
		if !ebs.ValidAccountID(g.Account) || !ebs.ValidAMIID(g.Image) {
			t.Fatalf("parseGrantName(%q) = %+v: account or AMI malformed", name, g)
		}
		if g.Run == "" {
			return // a legacy name: never written again
		}
		again, ok := parseGrantName(grantName(g.Run, g.Template, g.Account, g.Image, g.Held))
		if !ok || again != g {
			t.Fatalf("parseGrantName(%q) = %+v, but its name again parses as %+v, %v", name, g, again, ok)
		}
	})
}

func FuzzParseLease(f *testing.F) {
	f.Add("amicrypt:lease:k3j9x2m1p0", "template=3f9a1c2b7d4e expires=2026-11-23T10:15:00.250Z")
	f.Add("amicrypt:lease:k3j9x2m1p0", "expires=2026-11-23T10:15:00Z template=t extra=1")
	f.Add("amicrypt:lease:", "template= expires=")
	f.Add("amicrypt:template", "x")
	f.Fuzz(func(t *testing.T, key, value string) {
		l, ok := parseLease(key, value)
		if !ok {
			return
		}
		if !validRunID(l.Run) || l.Template == "" || l.Expires.IsZero() || leaseTagKey(l.Run) != key {
			t.Fatalf("parseLease(%q, %q) = %+v", key, value, l)
		}
		again, ok := parseLease(key, l.tagValue())
		if !ok || again.Run != l.Run || !again.Expires.Equal(l.Expires.Truncate(1e6)) {
			t.Fatalf("parseLease(%q, %q) = %+v, but its tag again parses as %+v, %v", key, value, l, again, ok)
		}
	})
}
