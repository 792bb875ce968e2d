package ebs

import (
	"errors"
	"strings"

	"github.com/aws/smithy-go"
)

// DeniedBy is the policy an access-denied error blames: the fix differs (the
// caller's IAM policy, or the resource's own policy such as a key policy).
type DeniedBy string

const (
	// DeniedByIdentityPolicy: the caller's IAM (identity-based) policy
	// denies the action or does not allow it.
	DeniedByIdentityPolicy DeniedBy = "IAM policy"
	// DeniedByResourcePolicy: the resource's policy (a KMS key policy)
	// denies the action or does not allow it.
	DeniedByResourcePolicy DeniedBy = "key policy"
	// DeniedByOrganization: a service control policy of the organization.
	DeniedByOrganization DeniedBy = "service control policy"
	// DeniedByUnknown: the error does not say which policy.
	DeniedByUnknown DeniedBy = "IAM policy or key policy"
)

// AccessDenied reports whether err is an access-denied API error
// (KMS AccessDeniedException, EC2 UnauthorizedOperation, STS AccessDenied)
// and which policy it blames.
//
// The error code is the same whichever policy refused, so after matching
// the code this reads the reason AWS documents in the message ("… with an
// explicit deny in an identity-based policy", "… because no resource-based
// policy allows the … action", "… in a service control policy"; IAM User
// Guide, "Access denied error messages"). EC2's UnauthorizedOperation is
// always the caller's IAM policy: EC2 resources have no policy of their own.
func AccessDenied(err error) (DeniedBy, bool) {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return "", false
	}
	switch apiErr.ErrorCode() {
	case "UnauthorizedOperation":
		return DeniedByIdentityPolicy, true
	case "AccessDeniedException", "AccessDenied":
	default:
		return "", false
	}
	msg := apiErr.ErrorMessage()
	switch {
	case strings.Contains(msg, "service control policy"):
		return DeniedByOrganization, true
	case strings.Contains(msg, "identity-based policy"):
		return DeniedByIdentityPolicy, true
	case strings.Contains(msg, "resource-based policy"):
		return DeniedByResourcePolicy, true
	}
	return DeniedByUnknown, true
}

// ExplicitDeny reports whether err is an access denial by an explicit Deny
// statement ("… with an explicit deny in …"), as opposed to no statement
// allowing the call. A call amicrypt makes only to check what AWS will do
// on the caller's behalf (EC2 using a key: kms:ViaService,
// kms:GrantIsForAWSResource) may be refused when made directly by a policy
// that allows it only through the service: only an explicit deny proves
// the service's call will be refused too.
func ExplicitDeny(err error) bool {
	var apiErr smithy.APIError
	if _, denied := AccessDenied(err); !denied || !errors.As(err, &apiErr) {
		return false
	}
	return strings.Contains(apiErr.ErrorMessage(), "explicit deny")
}
