package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// The fan-out world: the default world (build account 111111111111 with
// user packer, the public AMIs), a fifth enabled region, a second user of
// the build account for the post-processor (so its calls are told apart
// from the builder's in the audit), and as many target accounts as a
// scenario needs, each with role amicrypt-copy trusted by the build account
// and alias/amicrypt-target in every region.
const (
	FanoutRole      = "amicrypt-copy"
	FanoutKeyAlias  = "alias/amicrypt-target"
	BuildKeyAlias   = "alias/amicrypt-build"
	BuildAccount    = "111111111111"
	BuildUserARN    = "arn:aws:iam::111111111111:user/packer"
	CopyUser        = "packer-copy"
	CopyUserARN     = "arn:aws:iam::111111111111:user/packer-copy"
	CopyAccessKey   = "AKIA111111111111COPY"
	CopySecretKey   = "emu-secret-111111111111-copy"
	FanoutSourceAMI = "ami-0a1b2c3d4e5f60001" // public AL2023 in us-east-1, one 8 GiB snapshot
)

// allFanoutRegions are the regions of the fan-out, in the order scenarios
// take them: the source region first.
func allFanoutRegions() []string {
	return []string{"us-east-1", "eu-west-1", "us-west-2", "eu-central-1", "ap-southeast-2"}
}

// FanoutRegions returns the first n regions of the fan-out.
func FanoutRegions(n int) ([]string, error) {
	all := allFanoutRegions()
	if n < 1 || n > len(all) {
		return nil, fmt.Errorf("regions: %d; the fan-out world has 1 to %d regions", n, len(all))
	}
	return all[:n], nil
}

// TargetAccount is the ID of the i-th target account (0-based):
// 200000000001, 200000000002, …
func TargetAccount(i int) string { return fmt.Sprintf("2%011d", i+1) }

// FanoutWorld returns the world of a fan-out to accounts target accounts.
func FanoutWorld(accounts int) (*awsemu.World, error) {
	if accounts < 1 || accounts > 9999 {
		return nil, fmt.Errorf("accounts: %d; use 1 to 9999", accounts)
	}
	w, err := awsemu.DefaultWorld()
	if err != nil {
		return nil, err
	}
	for _, r := range allFanoutRegions() {
		if !slices.Contains(w.Regions, r) {
			w.Regions = append(w.Regions, r)
		}
	}
	w.Disabled = slices.DeleteFunc(w.Disabled, func(r string) bool { return slices.Contains(w.Regions, r) })
	build := slices.IndexFunc(w.Accounts, func(a awsemu.WorldAccount) bool { return a.ID == BuildAccount })
	if build < 0 {
		return nil, fmt.Errorf("the default world has no build account %s", BuildAccount)
	}
	acct := &w.Accounts[build]
	acct.Users = append(acct.Users, awsemu.WorldUser{Name: CopyUser, AccessKey: CopyAccessKey, SecretKey: CopySecretKey})
	for _, r := range allFanoutRegions() {
		has := slices.ContainsFunc(acct.Keys, func(k awsemu.WorldKey) bool {
			return k.Region == r && slices.Contains(k.Aliases, BuildKeyAlias)
		})
		if !has {
			acct.Keys = append(acct.Keys, awsemu.WorldKey{Region: r, Aliases: []string{BuildKeyAlias}})
		}
	}
	for i := range accounts {
		a := awsemu.WorldAccount{
			ID:    TargetAccount(i),
			Roles: []awsemu.WorldRole{{Name: FanoutRole, TrustedBy: []string{BuildAccount}}},
		}
		for _, r := range allFanoutRegions() {
			a.Keys = append(a.Keys, awsemu.WorldKey{Region: r, Aliases: []string{FanoutKeyAlias}})
		}
		w.Accounts = append(w.Accounts, a)
	}
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("the fan-out world: %w", err)
	}
	return w, nil
}

// WriteWorld writes w as a JSON world file for cmd/awsemu -world.
func WriteWorld(w *awsemu.World, path string) error {
	data, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
