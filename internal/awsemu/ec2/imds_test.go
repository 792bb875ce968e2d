package ec2_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// TestIMDS: an instance's metadata service as the SDK's IMDS client and
// credential provider use it (docs/aws-behaviour.md 5.2).
func TestIMDS(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	c := x.EC2(emutest.AcctBuild, emutest.East)
	run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeM6id2xlarge,
		IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("amicrypt-instance-store")}}))
	id := aws.ToString(run.Instances[0].InstanceId)
	url, err := x.Srv.Emulator().ServeIMDS(id)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(method, path string, header map[string]string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, url+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if st, _, _ := raw(http.MethodGet, "/latest/meta-data/instance-id", nil); st != http.StatusServiceUnavailable {
		t.Fatalf("a pending instance's metadata service answered %d, want 503", st)
	}
	x.WaitInstance(c, id)

	// IMDSv2: a token, its TTL echoed; without it, 401 (the AMI requires v2).
	st, h, token := raw(http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if st != 200 || token == "" || h.Get("X-aws-ec2-metadata-token-ttl-seconds") != "60" {
		t.Fatalf("token: %d %q ttl header %q", st, token, h.Get("X-aws-ec2-metadata-token-ttl-seconds"))
	}
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		want               int
	}{
		{"no token", http.MethodGet, "/latest/meta-data/instance-id", nil, 401},
		{"a wrong token", http.MethodGet, "/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": "nope"}, 401},
		{"TTL 0", http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "0"}, 400},
		{"TTL too long", http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "21601"}, 400},
		{"through a proxy", http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.0.0.1"}, 403},
		{"with the token", http.MethodGet, "/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": token}, 200},
	} {
		if st, _, body := raw(tc.method, tc.path, tc.header); st != tc.want {
			t.Errorf("%s: HTTP %d %q, want %d", tc.name, st, body, tc.want)
		}
	}

	// The SDK's IMDS client.
	client := imds.New(imds.Options{Endpoint: url, ClientEnableState: imds.ClientEnabled})
	doc, err := client.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		t.Fatal(err)
	}
	if doc.AccountID != emutest.AcctBuild || doc.Region != emutest.East || doc.InstanceID != id || doc.InstanceType != "m6id.2xlarge" {
		t.Fatalf("identity document %+v", doc.InstanceIdentityDocument)
	}
	region, err := client.GetRegion(ctx, &imds.GetRegionInput{})
	if err != nil || region.Region != emutest.East {
		t.Fatalf("region %+v %v", region, err)
	}

	// The instance role's credentials: a session named after the instance.
	creds := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = client })
	cfg := x.Srv.Config(ctx, emutest.AcctBuild, emutest.East)
	cfg.Credentials = aws.NewCredentialsCache(creds)
	who, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:sts::111111111111:assumed-role/amicrypt-instance-store/" + id; aws.ToString(who.Arn) != want {
		t.Fatalf("instance credentials are %s, want %s", aws.ToString(who.Arn), want)
	}

	// An instance without a profile has no iam/ tree.
	bare := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Micro}))
	bareID := aws.ToString(bare.Instances[0].InstanceId)
	x.WaitInstance(c, bareID)
	bareURL, err := x.Srv.Emulator().ServeIMDS(bareID)
	if err != nil {
		t.Fatal(err)
	}
	bareClient := imds.New(imds.Options{Endpoint: bareURL, ClientEnableState: imds.ClientEnabled})
	if _, err := bareClient.GetMetadata(ctx, &imds.GetMetadataInput{Path: "iam/security-credentials/"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("instance without a profile: %v, want 404", err)
	}

	// A stopped instance's metadata service does not answer.
	emutest.Must[*ec2.StopInstancesOutput](t, "StopInstances")(c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}))
	x.WaitInstance(c, id)
	if st, _, _ := raw(http.MethodGet, "/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": token}); st != http.StatusServiceUnavailable {
		t.Fatalf("stopped instance's metadata service answered %d", st)
	}
	if _, err := x.Srv.Emulator().ServeIMDS("i-0123456789abcdef0"); err == nil {
		t.Fatal("a metadata service for an unknown instance")
	}
}
