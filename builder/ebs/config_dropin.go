package ebs

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"unicode/utf8"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// known reports whether a template value is known: `packer validate` gives
// "<unknown>" for values of data sources it doesn't run (HashiCorp's
// amazon-ami, for one). Such a value is checked when the build runs, where
// Packer passes the real one, so validation lets it through.
func known(s string) bool { return !awsauth.Unknown(s) }

// Refusal is an amazon-ebs field amicrypt-ebs refuses, and why.
type Refusal struct {
	// Reason says why amicrypt-ebs differs and what to write instead.
	Reason string
	// set reports whether the template gives the field.
	set func(*Config) bool
}

// RefusedFields lists the fields of amazon-ebs (packer-plugin-amazon
// v1.8.0) that amicrypt-ebs decodes only to refuse, with the reason given
// at `packer validate`. Every other amazon-ebs field is honoured with
// amazon-ebs's meaning. docs/builders/ebs.mdx lists the same differences.
func RefusedFields() map[string]Refusal {
	return map[string]Refusal{
		"encrypt_boot": {
			Reason: "false asks for an unencrypted AMI, which amicrypt-ebs never makes: every snapshot of the AMI is encrypted under kms_key_id; remove encrypt_boot (true is what amicrypt-ebs always does)",
			set:    func(c *Config) bool { return c.EncryptBoot.False() },
		},
		"ami_groups": {
			Reason: `the only group is "all" (public), and AWS doesn't let an encrypted AMI be public; share with accounts (ami_users), an organization (ami_org_arns) or OUs (ami_ou_arns) instead`,
			set:    func(c *Config) bool { return len(c.AMIGroups) > 0 },
		},
		"snapshot_groups": {
			Reason: `the only group is "all" (public), and AWS doesn't let an encrypted snapshot be public; share with accounts (snapshot_users) instead`,
			set:    func(c *Config) bool { return len(c.SnapshotGroups) > 0 },
		},
		"temporary_iam_instance_profile_policy_document": {
			Reason: "amicrypt-ebs doesn't create IAM roles: a build allowed iam:CreateRole and iam:PassRole can give itself any permission, which compliance reviews of image pipelines reject; create the instance profile once with this policy and set iam_instance_profile = \"NAME\"",
			set:    func(c *Config) bool { return c.TemporaryIamInstanceProfilePolicyDocument != nil },
		},
		"fast_launch": {
			Reason: "amicrypt-ebs doesn't turn on Windows fast launch; enable it after the build with `aws ec2 enable-fast-launch --image-id AMI` (its pre-provisioned snapshots are then encrypted under the AMI's key)",
			set: func(c *Config) bool {
				f := c.FastLaunch
				return f.UseFastLaunch || len(f.RegionLaunchTemplates) > 0 || f.MaxParallelLaunches != 0 || f.TargetResourceCount != 0 ||
					f.LaunchTemplateID != "" || f.LaunchTemplateName != "" || f.LaunchTemplateVersion != 0
			},
		},
		"block_duration_minutes": {
			Reason: "AWS no longer offers Spot blocks (defined-duration spot instances; SpotMarketOptions.BlockDurationMinutes is deprecated); remove it: the spot instance runs until the build terminates it",
			set:    func(c *Config) bool { return c.BlockDurationMinutes != 0 },
		},
	}
}

// refusals returns an error for each refused field the template sets.
func (c *Config) refusals() []error {
	refused := RefusedFields()
	names := make([]string, 0, len(refused))
	for name := range refused {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		if r := refused[name]; r.set(c) {
			errs = append(errs, fmt.Errorf("%s: %s", name, r.Reason))
		}
	}
	return errs
}

// Tag limits (docs/aws-behaviour.md, tags): keys up to 128 characters,
// values up to 256, and neither may start with aws: (reserved for AWS).
const (
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// checkTag checks one tag of field; templated or unknown parts are checked
// when the build renders them.
func checkTag(field, key, value string) []error {
	var errs []error
	if !known(key) || !known(value) {
		return nil
	}
	if !strings.Contains(key, "{{") {
		switch {
		case key == "":
			errs = append(errs, fmt.Errorf("%s: a tag has an empty key; give every tag a key", field))
		case strings.HasPrefix(strings.ToLower(key), "aws:"):
			errs = append(errs, fmt.Errorf("%s: tag key %q starts with aws:, which AWS reserves for its own tags; rename the key (e.g. %q)", field, key, "app:"+key[4:]))
		case utf8.RuneCountInString(key) > maxTagKeyLen:
			errs = append(errs, fmt.Errorf("%s: tag key %q is %d characters; AWS allows %d: shorten it", field, abbreviate(key), utf8.RuneCountInString(key), maxTagKeyLen))
		}
	}
	if !strings.Contains(value, "{{") {
		switch {
		case strings.HasPrefix(strings.ToLower(value), "aws:"):
			errs = append(errs, fmt.Errorf("%s: the value of tag %q starts with aws:, which AWS reserves; change the value", field, key))
		case utf8.RuneCountInString(value) > maxTagValueLen:
			errs = append(errs, fmt.Errorf("%s: the value of tag %q is %d characters; AWS allows %d: shorten it", field, key, utf8.RuneCountInString(value), maxTagValueLen))
		}
	}
	return errs
}

func abbreviate(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return s
	}
	return string([]rune(s)[:37]) + "…"
}

// checkTags checks every tag of a map, in key order.
func checkTags(field string, tags map[string]string) []error {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		errs = append(errs, checkTag(field, k, tags[k])...)
	}
	return errs
}

// prepareTags checks every tag map the builder writes.
func (c *Config) prepareTags() []error {
	var errs []error
	for _, m := range []struct {
		field string
		tags  map[string]string
	}{
		{"tags", c.AMITags}, {"snapshot_tags", c.SnapshotTags}, {"run_tags", c.RunTags}, {"run_volume_tags", c.RunVolumeTags},
		{"spot_tags", c.SpotTags}, {"fleet_tags", c.FleetTags},
	} {
		errs = append(errs, checkTags(m.field, m.tags)...)
		for k := range m.tags {
			if reservedTagKey(k) {
				errs = append(errs, fmt.Errorf("%s: tag key %q is one amicrypt-ebs writes to find and clean up what its builds made; rename the key", m.field, k))
			}
		}
	}
	errs = append(errs, c.tagRoom()...)
	return errs
}

// maxTags is AWS's limit of tags on one resource (docs/aws-behaviour.md
// 9.3).
const maxTags = ebs.MaxTags

// tagRoom refuses tag maps that, with what amicrypt-ebs adds (the build
// lease's three tags on everything it makes, the source snapshot's ID on
// each encrypted snapshot, the run tags unless skip_ami_run_tags), would
// put more than 50 tags on the AMI, a snapshot or the instance.
func (c *Config) tagRoom() []error {
	count := func(maps ...map[string]string) int {
		keys := map[string]bool{}
		for _, m := range maps {
			for k := range m {
				keys[k] = true
			}
		}
		return len(keys)
	}
	run := c.RunTags
	if c.SkipAMIRunTags {
		run = nil
	}
	const lease = 3
	var errs []error
	for _, r := range []struct {
		field, on string
		n, own    int
	}{
		{"tags", "the AMI", count(run, c.AMITags), lease},
		{"snapshot_tags", "each snapshot", count(run, c.SnapshotTags), lease + 1},
		{"run_tags", "the build instance", count(c.RunTags), lease},
	} {
		if r.n+r.own > maxTags {
			with := ""
			if r.field != "run_tags" && len(run) > 0 {
				with = " (with run_tags, which amicrypt-ebs also puts there unless skip_ami_run_tags)"
			}
			errs = append(errs, fmt.Errorf("%s: %d tags%s; amicrypt-ebs adds %d of its own to %s and AWS allows %d on a resource: keep at most %d", r.field, r.n, with, r.own, r.on, maxTags, maxTags-r.own))
		}
	}
	return errs
}

// templateFuncs are the template functions of amazon-ebs's legacy JSON
// templates (HCL2 templates get clean_resource_name from Packer itself).
func templateFuncs() template.FuncMap {
	return template.FuncMap{"clean_resource_name": cleanResourceName}
}

// cleanResourceName replaces every character an AMI name may not contain
// with "-", as amazon-ebs's clean_resource_name.
func cleanResourceName(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("()[] ./-'@_", r)):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}
