package ec2

import (
	"fmt"
	"regexp"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// permissionChange is what a Modify*Attribute call adds or removes.
type permissionChange struct {
	Users, Groups, Orgs, OUs []string
}

func (pc permissionChange) empty() bool {
	return len(pc.Users)+len(pc.Groups)+len(pc.Orgs)+len(pc.OUs) == 0
}

// readPermissions reads Name.Add.N.{UserId,Group,…} or Name.Remove.N.
func readPermissions(p ec2Params, prefix string) permissionChange {
	var pc permissionChange
	for _, n := range p.indices(prefix) {
		pre := fmt.Sprintf("%s.%d.", prefix, n)
		if v := p.str(pre + "UserId"); v != "" {
			pc.Users = append(pc.Users, v)
		}
		if v := p.str(pre + "Group"); v != "" {
			pc.Groups = append(pc.Groups, v)
		}
		if v := p.str(pre + "OrganizationArn"); v != "" {
			pc.Orgs = append(pc.Orgs, v)
		}
		if v := p.str(pre + "OrganizationalUnitArn"); v != "" {
			pc.OUs = append(pc.OUs, v)
		}
	}
	return pc
}

var accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)

// readPermissionChange reads what a ModifyImageAttribute (LaunchPermission)
// or ModifySnapshotAttribute (CreateVolumePermission) call adds and
// removes, in the structured form or the legacy UserId.N/UserGroup.N with
// OperationType, and checks the account IDs and groups; badItem makes the
// error of a bad one ("userId" or "group").
func readPermissionChange(p ec2Params, name string, legacy permissionChange, required string,
	badItem func(field, value string) *core.APIError) (add, remove permissionChange, err *core.APIError) {
	add, remove = readPermissions(p, name+".Add"), readPermissions(p, name+".Remove")
	if !legacy.empty() {
		switch p.str("OperationType") {
		case "add":
			add = legacy
		case "remove":
			remove = legacy
		default:
			return add, remove, core.Errf("InvalidParameterValue", "Value (%s) for parameter OperationType is invalid. Expected 'add' or 'remove'.", p.str("OperationType"))
		}
	}
	if add.empty() && remove.empty() {
		return add, remove, core.Errf("MissingParameter", "The request must contain the parameter %s", required)
	}
	for _, u := range append(append([]string{}, add.Users...), remove.Users...) {
		if !accountIDPattern.MatchString(u) {
			return add, remove, badItem("userId", u)
		}
	}
	for _, g := range append(append([]string{}, add.Groups...), remove.Groups...) {
		if g != "all" {
			return add, remove, badItem("group", g)
		}
	}
	return add, remove, nil
}

// applyPermissions adds and removes account and "all" permissions on a
// resource, and notes each change for the audit (the checker finds the
// permissions a run added and left) as "NOUN.add.ACCOUNT" = resource ID.
func applyPermissions(c *core.Call, noun, id, owner string, users *[]string, public *bool, add, remove permissionChange) {
	for _, u := range add.Users {
		if u != owner {
			*users = appendUnique(*users, u)
		}
		c.Note(noun+".add."+u, id)
	}
	if len(add.Groups) > 0 {
		*public = true
		c.Note(noun+".add.all", id)
	}
	*users = removeAll(*users, remove.Users...)
	for _, u := range remove.Users {
		c.Note(noun+".remove."+u, id)
	}
	if len(remove.Groups) > 0 {
		*public = false
	}
}
