package awsemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsimple"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/world"
)

// DefaultWorld returns a fresh copy of the embedded default world.
func DefaultWorld() (*World, error) {
	return ParseWorld("default.json", world.DefaultJSON())
}

// LoadWorld reads a world file: HCL when its name ends in .hcl, else JSON.
func LoadWorld(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading world file: %w", err)
	}
	return ParseWorld(path, data)
}

// ParseWorld parses a world file. filename picks the syntax (.hcl: HCL,
// otherwise JSON) and names the file in errors. HCL files may call
// jsonencode() to write key policies.
func ParseWorld(filename string, data []byte) (*World, error) {
	var w World
	if strings.EqualFold(filepath.Ext(filename), ".hcl") {
		ctx := &hcl.EvalContext{Functions: map[string]function.Function{"jsonencode": stdlib.JSONEncodeFunc}}
		if err := hclsimple.Decode(filename, data, ctx, &w); err != nil {
			return nil, fmt.Errorf("world file %s: %w", filename, err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil {
			return nil, fmt.Errorf("world file %s: %w", filename, err)
		}
	}
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("world file %s: %w", filename, err)
	}
	return &w, nil
}

var (
	accountIDRe = regexp.MustCompile(`^[0-9]{12}$`)
	accessKeyRe = regexp.MustCompile(`^AKIA[A-Z0-9]{12,124}$`)
	regionRe    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	nameRe      = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
)

// Validate reports the first problem in the world, naming the field, the
// value and what is expected.
func (w *World) Validate() error {
	if len(w.Regions) == 0 {
		return fmt.Errorf("regions: at least one enabled region is required, e.g. regions = [\"us-east-1\"]")
	}
	enabled := map[string]bool{}
	for _, r := range w.Regions {
		if !regionRe.MatchString(r) {
			return fmt.Errorf("regions: %q is not a region name like us-east-1", r)
		}
		enabled[r] = true
	}
	for _, r := range w.Disabled {
		if !regionRe.MatchString(r) {
			return fmt.Errorf("disabled_regions: %q is not a region name like ap-southeast-3", r)
		}
		if enabled[r] {
			return fmt.Errorf("disabled_regions: %q is also in regions; a region is either enabled or not", r)
		}
	}
	accounts := map[string]bool{}
	accessKeys := map[string]bool{}
	for i, a := range w.Accounts {
		where := fmt.Sprintf("accounts[%d]", i)
		if !accountIDRe.MatchString(a.ID) {
			return fmt.Errorf("%s.id: %q is not a 12-digit account ID", where, a.ID)
		}
		if accounts[a.ID] {
			return fmt.Errorf("%s.id: account %s is declared twice", where, a.ID)
		}
		accounts[a.ID] = true
		for j, u := range a.Users {
			uw := fmt.Sprintf("%s.users[%d]", where, j)
			if !nameRe.MatchString(u.Name) {
				return fmt.Errorf("%s.name: %q is not a valid IAM user name", uw, u.Name)
			}
			if !accessKeyRe.MatchString(u.AccessKey) {
				return fmt.Errorf("%s.access_key: %q must be AKIA followed by at least 12 capital letters or digits", uw, u.AccessKey)
			}
			if accessKeys[u.AccessKey] {
				return fmt.Errorf("%s.access_key: %q is used twice; access keys are unique", uw, u.AccessKey)
			}
			accessKeys[u.AccessKey] = true
			if u.SecretKey == "" {
				return fmt.Errorf("%s.secret_key: empty; every user needs a secret key", uw)
			}
		}
		for j, r := range a.Roles {
			rw := fmt.Sprintf("%s.roles[%d]", where, j)
			if !nameRe.MatchString(r.Name) {
				return fmt.Errorf("%s.name: %q is not a valid IAM role name", rw, r.Name)
			}
			for _, t := range r.TrustedBy {
				if !accountIDRe.MatchString(t) && !strings.HasPrefix(t, "arn:aws:") {
					return fmt.Errorf("%s.trusted: %q must be an account ID or a principal ARN", rw, t)
				}
			}
		}
		for j, k := range a.Keys {
			kw := fmt.Sprintf("%s.keys[%d]", where, j)
			if !enabled[k.Region] {
				return fmt.Errorf("%s.region: %q is not an enabled region of this world (%s)", kw, k.Region, strings.Join(w.Regions, ", "))
			}
			for _, al := range k.Aliases {
				if !strings.HasPrefix(al, "alias/") || strings.HasPrefix(al, "alias/aws/") {
					return fmt.Errorf("%s.aliases: %q must start with alias/ and not alias/aws/", kw, al)
				}
			}
			for _, r := range k.ReplicaRegions {
				if !k.MultiRegion {
					return fmt.Errorf("%s.replica_regions: only a multi_region key has replicas; set multi_region = true", kw)
				}
				if !enabled[r] || r == k.Region {
					return fmt.Errorf("%s.replica_regions: %q must be an enabled region other than the primary %s", kw, r, k.Region)
				}
			}
			switch k.State {
			case "", "Enabled", "Disabled", "PendingDeletion":
			default:
				return fmt.Errorf("%s.state: %q must be Enabled, Disabled or PendingDeletion", kw, k.State)
			}
			if k.Policy != "" {
				if _, err := parsePolicy(k.Policy); err != nil {
					return fmt.Errorf("%s.policy: %w", kw, err)
				}
			}
		}
		for _, r := range a.EBSEncryptionByDefault {
			if r != "*" && !enabled[r] {
				return fmt.Errorf("%s.ebs_encryption_by_default: %q is neither \"*\" nor an enabled region", where, r)
			}
		}
	}
	for i, im := range w.Images {
		where := fmt.Sprintf("images[%d]", i)
		if !strings.HasPrefix(im.ID, "ami-") {
			return fmt.Errorf("%s.id: %q must start with ami-", where, im.ID)
		}
		if !accounts[im.Owner] {
			return fmt.Errorf("%s.owner: %q is not an account of this world", where, im.Owner)
		}
		if !enabled[im.Region] {
			return fmt.Errorf("%s.region: %q is not an enabled region of this world", where, im.Region)
		}
		if len(im.Volumes) == 0 {
			return fmt.Errorf("%s.volumes: an EBS-backed image needs at least one volume", where)
		}
		for j, v := range im.Volumes {
			if !strings.HasPrefix(v.SnapshotID, "snap-") {
				return fmt.Errorf("%s.volumes[%d].snapshot_id: %q must start with snap-", where, j, v.SnapshotID)
			}
			if v.SizeGiB <= 0 {
				return fmt.Errorf("%s.volumes[%d].size_gib: %d must be positive", where, j, v.SizeGiB)
			}
		}
	}
	return nil
}
