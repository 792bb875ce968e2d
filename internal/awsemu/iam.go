package awsemu

// iamState is the static IAM of the world: accounts, users and their access
// keys, roles and their trust. Session credentials live in stsState.
type iamState struct {
	accounts map[string]*WorldAccount
	keys     map[string]iamUser // access key -> user
	users    map[string]iamUser // user ARN -> user
	roles    map[string]iamRole // role ARN -> role
}
type iamUser struct {
	Account string
	Name    string
	ARN     string
	Secret  string
	Deny    []string
}
type iamRole struct {
	Account    string
	Name       string
	ARN        string
	Trusted    []string
	ExternalID string
	Deny       []string
}

func newIAMState(w *World) *iamState {
	s := &iamState{
		accounts: map[string]*WorldAccount{},
		keys:     map[string]iamUser{},
		users:    map[string]iamUser{},
		roles:    map[string]iamRole{},
	}
	for i := range w.Accounts {
		a := &w.Accounts[i]
		s.accounts[a.ID] = a
		for _, u := range a.Users {
			iu := iamUser{Account: a.ID, Name: u.Name, ARN: UserARN(a.ID, u.Name), Secret: u.SecretKey, Deny: u.Deny}
			s.keys[u.AccessKey] = iu
			s.users[iu.ARN] = iu
		}
		for _, r := range a.Roles {
			ir := iamRole{Account: a.ID, Name: r.Name, ARN: RoleARN(a.ID, r.Name), Trusted: r.TrustedBy, ExternalID: r.ExternalID, Deny: r.Deny}
			s.roles[ir.ARN] = ir
		}
	}
	return s
}

// denyList is the IAM deny list of an IAM principal (user or role ARN).
func (e *Emulator) denyList(principalIAM string) []string {
	if u, ok := e.iam.users[principalIAM]; ok {
		return u.Deny
	}
	if r, ok := e.iam.roles[principalIAM]; ok {
		return r.Deny
	}
	return nil
}

// iamAllowed reports whether the caller's own IAM policy allows action
// ("ec2:CopyImage", "kms:CreateGrant"). The emulator's IAM allows everything
// but what the world's deny lists name.
func (e *Emulator) iamAllowed(c *Call, action string) bool {
	return e.principalAllowed(c.PrincipalIAM, action)
}

// principalAllowed is iamAllowed for a principal named by its IAM ARN.
func (e *Emulator) principalAllowed(principalIAM, action string) bool {
	for _, pattern := range e.denyList(principalIAM) {
		if ActionMatches(pattern, action) {
			return false
		}
	}
	return true
}
