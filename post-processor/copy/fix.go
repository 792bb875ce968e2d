package copy

import (
	"fmt"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// accessFix is the fix of an access-denied error: which policy of whom
// allows what. It names the caller's IAM policy or the key policy as the
// error blames one or the other (ebs.AccessDenied), and is "" for an error
// that is not an access denial.
func accessFix(err error, principal, action, resource string) string {
	by, denied := ebs.AccessDenied(err)
	if !denied {
		return ""
	}
	switch by {
	case ebs.DeniedByIdentityPolicy:
		return fmt.Sprintf("allow %s on %s in the IAM policy of %s: its own IAM policy refuses it (the key policy is not the problem)", action, resource, principal)
	case ebs.DeniedByResourcePolicy:
		return fmt.Sprintf("allow %s to %s in the key policy of %s: the key policy refuses it", action, principal, resource)
	case ebs.DeniedByOrganization:
		return fmt.Sprintf("a service control policy of the organization refuses %s to %s; ask its administrators to allow %s", action, principal, action)
	default:
		return fmt.Sprintf("allow %s on %s to %s, in its IAM policy and (for a KMS key) in the key policy", action, resource, principal)
	}
}

// fixOr is accessFix, or otherwise when err is not an access denial.
func fixOr(err error, principal, action, resource, otherwise string) string {
	if f := accessFix(err, principal, action, resource); f != "" {
		return f
	}
	return otherwise
}
