package awsauth

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	vaultapi "github.com/hashicorp/vault/api"
)

// credentials reads AWS credentials from Vault's AWS secrets engine, the way
// the Amazon plugin does: `ENGINE/creds/NAME` for an IAM-user role,
// `ENGINE/sts/NAME` (with role_arn and ttl) for an assumed role. The Vault
// client (the maintained github.com/hashicorp/vault/api) reads VAULT_ADDR,
// VAULT_TOKEN and the rest of its environment.
func (v *VaultAWSEngineOptions) credentials() (aws.Credentials, error) {
	client, err := vaultapi.NewClient(vaultapi.DefaultConfig())
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("vault_aws_engine: making a Vault client: %w", err)
	}
	engine := v.EngineName
	if engine == "" {
		engine = "aws"
	}
	engine = strings.Trim(engine, "/")
	var secret *vaultapi.Secret
	var path string
	if v.RoleARN != "" {
		path = fmt.Sprintf("%s/sts/%s", engine, v.Name)
		data := map[string]interface{}{"role_arn": v.RoleARN}
		if v.TTL != "" {
			data["ttl"] = v.TTL
		}
		secret, err = client.Logical().Write(path, data)
	} else {
		path = fmt.Sprintf("%s/creds/%s", engine, v.Name)
		secret, err = client.Logical().Read(path)
	}
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("vault_aws_engine: reading %s from Vault at %s: %w", path, client.Address(), err)
	}
	if secret == nil || secret.Data == nil {
		return aws.Credentials{}, fmt.Errorf("vault_aws_engine: Vault at %s has no secret at %s; check name and engine_name", client.Address(), path)
	}
	str := func(k string) string { s, _ := secret.Data[k].(string); return s }
	creds := aws.Credentials{AccessKeyID: str("access_key"), SecretAccessKey: str("secret_key"), SessionToken: str("security_token"), Source: "Vault " + path}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return aws.Credentials{}, fmt.Errorf("vault_aws_engine: the secret at %s has no access_key/secret_key", path)
	}
	return creds, nil
}
