package awsauth

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// Against the emulator's default world: the build account assumes the
// target accounts' amicrypt-copy roles, with and without an external ID,
// and through the assume_role block of the access config.
func TestAssumeRoleAgainstEmulator(t *testing.T) {
	srv := emutest.Start(t, awsemu.Options{})
	dir := t.TempDir()
	t.Setenv("AWS_ENDPOINT_URL", srv.URL())
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx := context.Background()

	access := AccessConfig{RawRegion: "us-east-1", AccessKey: "AKIA1111111111111111", SecretKey: "emu-secret-111111111111"}
	if errs := access.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	base, err := access.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := CallerIdentity(ctx, base)
	if err != nil || id.Account != "111111111111" {
		t.Fatalf("base identity = %+v, %v", id, err)
	}

	cases := []struct {
		name, role, externalID, wantAccount, wantErr string
	}{
		{name: "plain role", role: "arn:aws:iam::222222222222:role/amicrypt-copy", wantAccount: "222222222222"},
		{name: "role with external id", role: "arn:aws:iam::444444444444:role/amicrypt-copy", externalID: "amicrypt-demo", wantAccount: "444444444444"},
		{name: "missing external id", role: "arn:aws:iam::444444444444:role/amicrypt-copy", wantErr: "AccessDenied"},
		{name: "untrusted role", role: "arn:aws:iam::222222222222:role/no-such-role", wantErr: "AccessDenied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := AssumeRole(base, RoleOptions{RoleARN: tc.role, ExternalID: tc.externalID})
			id, err := CallerIdentity(ctx, cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Account != tc.wantAccount || !strings.Contains(id.ARN, "assumed-role/amicrypt-copy/amicrypt") {
				t.Errorf("identity = %+v", id)
			}
		})
	}

	// The assume_role block does the same through Config.
	viaBlock := AccessConfig{RawRegion: "us-east-1", AccessKey: "AKIA1111111111111111", SecretKey: "emu-secret-111111111111",
		AssumeRole: AssumeRoleConfig{RoleARN: "arn:aws:iam::111111111111:role/amicrypt-build", SessionName: "ci"}}
	if errs := viaBlock.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg, err := viaBlock.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := CallerIdentity(ctx, cfg); err != nil || !strings.HasSuffix(id.ARN, "assumed-role/amicrypt-build/ci") {
		t.Errorf("assume_role identity = %+v, %v", id, err)
	}
}
