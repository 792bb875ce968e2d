package awsemu

// iamAllowed reports whether the caller's own IAM policy allows action
// ("ec2:CopyImage", "kms:CreateGrant").
func (e *Emulator) iamAllowed(c *Call, action string) bool {
	return e.iam.Allowed(c.PrincipalIAM, action)
}

// principalAllowed is iamAllowed for a principal named by its IAM ARN.
func (e *Emulator) principalAllowed(principalIAM, action string) bool {
	return e.iam.Allowed(principalIAM, action)
}
