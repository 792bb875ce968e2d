package kms

import "github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"

// KMS's errors, in one place. Texts follow the KMS API reference; where AWS
// does not pin the wording down, docs/aws-behaviour.md says so.

func nullField(field string) *core.APIError {
	return core.Errf("ValidationException", "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", field)
}

func accessDenied(principal, action, resource, why string) *core.APIError {
	return core.Errf("AccessDeniedException", "User: %s is not authorized to perform: %s on resource: %s %s", principal, action, resource, why)
}

// keyStateError is the error of using a key that is not enabled.
func keyStateError(k *key) *core.APIError {
	switch k.State {
	case "Disabled":
		return core.Errf("DisabledException", "%s is disabled.", k.ARN)
	case "PendingDeletion":
		return core.Errf("KMSInvalidStateException", "%s is pending deletion.", k.ARN)
	}
	return nil
}

// ownKeyOnly refuses key-administration operations KMS does not allow
// across accounts (GetKeyPolicy, PutKeyPolicy, EnableKey, DisableKey,
// ScheduleKeyDeletion, CancelKeyDeletion, CreateAlias: "Cross-account use:
// No" in the KMS API reference), whatever the key policy says.
func ownKeyOnly(c *core.Call, k *key, action string) *core.APIError {
	if k.Account == c.Account {
		return nil
	}
	return accessDenied(c.Principal, "kms:"+action, k.ARN, "because kms:"+action+" can't be performed on a KMS key in another account")
}

// managedKeyDenied: nobody may administer an AWS-managed key.
func managedKeyDenied(c *core.Call, k *key, action string) *core.APIError {
	if k.Manager != "AWS" {
		return nil
	}
	return accessDenied(c.Principal, "kms:"+action, k.ARN, "because "+k.ARN+" is an AWS managed key")
}

func internalError(err error) *core.APIError {
	return &core.APIError{HTTPStatus: 500, Code: "KMSInternalException", Message: err.Error()}
}

// UnknownOperation is KMS's answer to an X-Amz-Target it does not serve
// (the text is an emulator convention, docs/aws-behaviour.md).
func UnknownOperation(target string) *core.APIError {
	if target == "" {
		target = "(no X-Amz-Target header)"
	}
	return core.Errf("UnknownOperationException", "The operation %s is not supported by AWS KMS.", target)
}
