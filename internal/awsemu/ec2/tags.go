package ec2

// ec2_tags.go: per-account tags, Describe* filters and the account-level
// EBS encryption settings.

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// setTags merges tags written by account onto a resource: they live in
// the account's store of the resource's region.
func (e *view) setTags(id, account string, tags map[string]string) {
	setTags(e.store(core.Scope{Account: account, Region: e.regionOf(id)}), id, tags)
}

func setTags(st *store, id string, tags map[string]string) {
	mine, ok := st.Tags[id]
	if !ok {
		mine = map[string]string{}
		st.Tags[id] = mine
	}
	for k, v := range tags {
		mine[k] = v
	}
}

// tagsOf is what account wrote on a resource of region.
func (e *view) tagsOf(id, region, account string) map[string]string {
	return e.store(core.Scope{Account: account, Region: region}).Tags[id]
}

// regionOf is the region of a resource, from the index.
func (e *view) regionOf(id string) string {
	if ix, ok := e.index.Load(id); ok {
		return ix.(indexed).home.Region
	}
	return ""
}

// tagSet is the tags account sees on a resource: only its own (docs/aws-behaviour.md 3.6).
func (e *view) tagSet(id, account string) []xmlTag {
	mine := e.tagsOf(id, e.regionOf(id), account)
	if len(mine) == 0 {
		return nil
	}
	out := make([]xmlTag, 0, len(mine))
	for _, k := range sortedKeys(mine) {
		out = append(out, xmlTag{Key: k, Value: mine[k]})
	}
	return out
}

// tagFilterValues answers tag:KEY, tag-key and tag-value filters; handled
// is false for other filter names.
func (e *view) tagFilterValues(id, account, name string) (values []string, known, handled bool) {
	mine := e.tagsOf(id, e.regionOf(id), account)
	switch {
	case strings.HasPrefix(name, "tag:"):
		if v, ok := mine[name[4:]]; ok {
			return []string{v}, true, true
		}
		return nil, true, true
	case name == "tag-key":
		return sortedKeys(mine), true, true
	case name == "tag-value":
		var vs []string
		for _, v := range mine {
			vs = append(vs, v)
		}
		return vs, true, true
	}
	return nil, false, false
}

// matchFilters reports whether a resource passes every filter: for each
// filter, one of its values (with * and ? wildcards) matches one of the
// resource's values. values answers a filter name; an unknown name is an
// InvalidParameterValue, as on AWS.
func matchFilters(filters []ec2Filter, values func(name string) ([]string, bool)) (bool, *core.APIError) {
	for _, f := range filters {
		have, known := values(f.Name)
		if !known {
			return false, core.Errf("InvalidParameterValue", "The filter '%s' is invalid", f.Name)
		}
		ok := false
		for _, want := range f.Values {
			for _, h := range have {
				if core.GlobMatch(want, h) {
					ok = true
					break
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

func validateTags(tags map[string]string) *core.APIError {
	if len(tags) > 50 {
		return core.Errf("TagLimitExceeded", "The maximum number of tags for a resource is 50.")
	}
	for k, v := range tags {
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return core.Errf("InvalidParameterValue", "Value (%s) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use", k)
		}
		// Lengths are in Unicode characters, not bytes. A key takes 128
		// (the tagging guides "Tag restrictions"; the API reference's Tag says
		// 127, an emulator convention to follow the guide).
		if utf8.RuneCountInString(k) > 128 {
			return core.Errf("InvalidParameterValue", "Value (%s) for parameter key is invalid. Tag keys must be 128 characters or fewer.", k)
		}
		if utf8.RuneCountInString(v) > 256 {
			return core.Errf("InvalidParameterValue", "Value for parameter value is invalid. Tag values must be 256 characters or fewer (key %s).", k)
		}
	}
	return nil
}

// resourceType names the resource behind an ID, as DescribeTags reports it.
func resourceType(id string) string {
	prefix, _, _ := strings.Cut(id, "-")
	return map[string]string{"ami": "image", "snap": "snapshot", "i": "instance", "vol": "volume",
		"sg": "security-group", "key": "key-pair", "vpc": "vpc", "subnet": "subnet",
		"lt": "launch-template", "fleet": "fleet", "sir": "spot-instances-request"}[prefix]
}

// taggable checks that the caller sees resource id in its region, with the
// resource's own NotFound error otherwise.
func (e *view) taggable(c *core.Call, id string) *core.APIError {
	switch resourceType(id) {
	case "image":
		if img, ok := get(e, imagesOf, id); ok && e.visibleImage(img, c) {
			return nil
		}
		return imageNotFound(id)
	case "snapshot":
		if s, ok := get(e, snapshotsOf, id); ok && e.visibleSnapshot(s, c) {
			return nil
		}
		return snapshotNotFound(id)
	case "instance":
		if inst, ok := get(e, instancesOf, id); ok && e.visibleInstance(inst, c) {
			return nil
		}
		return instanceNotFound(id)
	case "volume":
		if v, ok := get(e, volumesOf, id); ok && v.Owner == c.Account && v.Region == c.Region {
			return nil
		}
		return core.Errf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	case "security-group":
		if sg, ok := get(e, securityGroupsOf, id); ok && sg.Owner == c.Account && sg.Region == c.Region {
			return nil
		}
		return core.Errf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	case "key-pair":
		if k, ok := get(e, keyPairsOf, id); ok && k.Owner == c.Account && k.Region == c.Region {
			return nil
		}
		return core.Errf("InvalidKeyPair.NotFound", "The key pair ID '%s' does not exist", id)
	case "vpc":
		if v, ok := get(e, vpcsOf, id); ok && v.Owner == c.Account && v.Region == c.Region {
			return nil
		}
		return core.Errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
	case "subnet":
		if s, ok := get(e, subnetsOf, id); ok && s.Owner == c.Account && s.Region == c.Region {
			return nil
		}
		return core.Errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
	case "launch-template", "fleet", "spot-instances-request":
		return e.taggableDropIn(c, id)
	}
	return core.Errf("InvalidID", "The ID '%s' is not valid", id)
}

func (e *view) ec2CreateTags(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids := p.list("ResourceId")
	if len(ids) == 0 {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	tags := p.tagList("Tag")
	if len(tags) == 0 {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter tagSet")
	}
	if err := validateTags(tags); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := e.taggable(c, id); err != nil {
			return nil, err
		}
		merged := map[string]string{}
		for k, v := range e.own(c).Tags[id] {
			merged[k] = v
		}
		for k, v := range tags {
			merged[k] = v
		}
		if len(merged) > 50 {
			return nil, core.Errf("TagLimitExceeded", "The maximum number of tags for resource %s is 50.", id)
		}
	}
	for _, id := range ids {
		e.setTags(id, c.Account, tags)
	}
	return ec2Return{Return: true}, nil
}

func (e *view) ec2DeleteTags(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids := p.list("ResourceId")
	if len(ids) == 0 {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	type kv struct {
		key, value string
		hasValue   bool
	}
	var which []kv
	for _, n := range p.indices("Tag") {
		pre := "Tag." + strconv.Itoa(n)
		which = append(which, kv{p.str(pre + ".Key"), p.str(pre + ".Value"), p.has(pre + ".Value")})
	}
	for _, id := range ids {
		if err := e.taggable(c, id); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		mine := e.own(c).Tags[id]
		if len(which) == 0 {
			delete(e.own(c).Tags, id)
			continue
		}
		for _, t := range which {
			if v, ok := mine[t.key]; ok && (!t.hasValue || v == t.value) {
				delete(mine, t.key)
			}
		}
	}
	return ec2Return{Return: true}, nil
}

type xmlTagDescription struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

type describeTagsOutput struct {
	TagSet    []xmlTagDescription `xml:"tagSet>item"`
	NextToken string              `xml:"nextToken,omitempty"`
}

func (e *view) ec2DescribeTags(c *core.Call, p ec2Params) (any, *core.APIError) {
	filters := p.filters()
	var found []xmlTagDescription
	for id, mine := range e.own(c).Tags {
		if len(mine) == 0 || e.taggable(c, id) != nil {
			continue
		}
		for k, v := range mine {
			ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
				switch name {
				case "resource-id":
					return []string{id}, true
				case "resource-type":
					return []string{resourceType(id)}, true
				case "key":
					return []string{k}, true
				case "value":
					return []string{v}, true
				}
				if strings.HasPrefix(name, "tag:") {
					if name[4:] == k {
						return []string{v}, true
					}
					return nil, true
				}
				return nil, false
			})
			if ferr != nil {
				return nil, ferr
			}
			if ok {
				found = append(found, xmlTagDescription{ResourceID: id, ResourceType: resourceType(id), Key: k, Value: v})
			}
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].ResourceID != found[j].ResourceID {
			return found[i].ResourceID < found[j].ResourceID
		}
		return found[i].Key < found[j].Key
	})
	from, to, next, err := paginate(p, len(found))
	if err != nil {
		return nil, err
	}
	out := describeTagsOutput{TagSet: append([]xmlTagDescription{}, found[from:to]...), NextToken: next}
	return out, nil
}

// ---- EBS encryption by default ----

type ebsEncryptionOutput struct {
	EbsEncryptionByDefault bool   `xml:"ebsEncryptionByDefault"`
	SseType                string `xml:"sseType,omitempty"`
}

type ebsKeyOutput struct {
	KmsKeyID string `xml:"kmsKeyId"`
}

func (e *view) ebsDefaultFor(c *core.Call) *ec2EBSDefault {
	st := e.own(c)
	if st.EBSDefault == nil {
		st.EBSDefault = &ec2EBSDefault{}
	}
	return st.EBSDefault
}

func (e *view) ec2GetEbsEncryptionByDefault(c *core.Call, p ec2Params) (any, *core.APIError) {
	return ebsEncryptionOutput{EbsEncryptionByDefault: e.encryptByDefault(c.Account, c.Region), SseType: "sse-ebs"}, nil
}

func (e *view) ec2EnableEbsEncryptionByDefault(c *core.Call, p ec2Params) (any, *core.APIError) {
	on := true
	e.ebsDefaultFor(c).Encrypt = &on
	return ebsEncryptionOutput{EbsEncryptionByDefault: true}, nil
}

func (e *view) ec2DisableEbsEncryptionByDefault(c *core.Call, p ec2Params) (any, *core.APIError) {
	off := false
	e.ebsDefaultFor(c).Encrypt = &off
	return ebsEncryptionOutput{EbsEncryptionByDefault: false}, nil
}

// awsManagedEBSAlias is the alias ARN GetEbsDefaultKmsKeyId reports while
// the default key was never changed.
func awsManagedEBSAlias(account, region string) string {
	return "arn:aws:kms:" + region + ":" + account + ":alias/aws/ebs"
}

func (e *view) ec2GetEbsDefaultKmsKeyId(c *core.Call, p ec2Params) (any, *core.APIError) {
	if ref := e.defaultKeyRef(c.Account, c.Region); ref != "" {
		return ebsKeyOutput{KmsKeyID: ref}, nil
	}
	return ebsKeyOutput{KmsKeyID: awsManagedEBSAlias(c.Account, c.Region)}, nil
}

func (e *view) ec2ModifyEbsDefaultKmsKeyId(c *core.Call, p ec2Params) (any, *core.APIError) {
	ref, err := p.required("KmsKeyId")
	if err != nil {
		return nil, err
	}
	info, kerr := e.useKey(c, c.Region, ref, []string{core.OpDescribeKey})
	if kerr != nil {
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter KmsKeyId is invalid: %s", ref, kerr.Message)
	}
	e.ebsDefaultFor(c).KeyARN = info.ARN
	return ebsKeyOutput{KmsKeyID: info.ARN}, nil
}

func (e *view) ec2ResetEbsDefaultKmsKeyId(c *core.Call, p ec2Params) (any, *core.APIError) {
	e.ebsDefaultFor(c).KeyARN = ""
	return ebsKeyOutput{KmsKeyID: awsManagedEBSAlias(c.Account, c.Region)}, nil
}
