// Package instancetest runs amicrypt-agent's tests as an EC2 instance would:
// it launches instances with the amicrypt-instance-store instance profile in
// the local AWS emulator (internal/awsemu), serves each one's instance
// metadata service on loopback, builds KMS clients that take the instance
// role's credentials from it, and reads back what KMS recorded (the
// CloudTrail view) and what the emulator's invariant checker finds.
//
// The default world has the profile, its role and a key,
// alias/amicrypt-instance-store, whose policy lets the role use data keys
// only with kms:EncryptionContext:amicrypt:instance-arn equal to
// ${ec2:SourceInstanceARN}: KMS itself holds each disk to its instance.
package instancetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// The default world's account, region, instance profile, role and key for
// the instance store.
const (
	Account = "111111111111"
	Region  = "us-east-1"
	Profile = "amicrypt-instance-store"
	Role    = "amicrypt-instance-store"
	Key     = "alias/amicrypt-instance-store"
	// image is the default world's seed AMI in Region.
	image = "ami-0a1b2c3d4e5f60001"
)

// Instance is a running instance of the emulator.
type Instance struct {
	ID string
	// IMDS is its metadata service's URL (http://127.0.0.1:PORT): what it
	// reaches at http://169.254.169.254.
	IMDS string
}

// ARN is the instance's ARN, the value of amicrypt:instance-arn.
func (i Instance) ARN() string { return "arn:aws:ec2:" + Region + ":" + Account + ":instance/" + i.ID }

// SessionARN is the role session its credentials carry, named after it.
func (i Instance) SessionARN() string {
	return "arn:aws:sts::" + Account + ":assumed-role/" + Role + "/" + i.ID
}

// HostPort is the metadata service's 127.0.0.1:PORT, for a VM's forward.
func (i Instance) HostPort() string { return i.IMDS[len("http://"):] }

// EC2 is the account user's EC2 client.
func EC2(ctx context.Context, srv *emutest.Server) *ec2.Client {
	return ec2.NewFromConfig(srv.Config(ctx, Account, Region))
}

// AdminKMS is the account user's KMS client: it may administer the
// instance-store key (enable, disable, read its policy) but not use it.
func AdminKMS(ctx context.Context, srv *emutest.Server) *kms.Client {
	return kms.NewFromConfig(srv.Config(ctx, Account, Region))
}

// Launch runs an instance with the instance profile (an m6id.large, which
// has an NVMe instance store), waits until it runs and serves its metadata
// service.
func Launch(t testing.TB, srv *emutest.Server) Instance {
	t.Helper()
	ctx := context.Background()
	out, err := EC2(ctx, srv).RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(image), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceTypeM6idLarge,
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String(Profile)},
		MetadataOptions:    &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired},
	})
	if err != nil {
		t.Fatalf("RunInstances with profile %s: %v", Profile, err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	wait(t, srv, id, ec2types.InstanceStateNameRunning)
	url, err := srv.Emulator().ServeIMDS(id)
	if err != nil {
		t.Fatalf("metadata service of %s: %v", id, err)
	}
	return Instance{ID: id, IMDS: url}
}

// StopStart stops the instance and starts it again, as a user's stop/start
// does (the instance store comes back blank; the ID stays).
func StopStart(t testing.TB, srv *emutest.Server, inst Instance) {
	t.Helper()
	ctx := context.Background()
	c := EC2(ctx, srv)
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{inst.ID}}); err != nil {
		t.Fatalf("StopInstances %s: %v", inst.ID, err)
	}
	wait(t, srv, inst.ID, ec2types.InstanceStateNameStopped)
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{inst.ID}}); err != nil {
		t.Fatalf("StartInstances %s: %v", inst.ID, err)
	}
	wait(t, srv, inst.ID, ec2types.InstanceStateNameRunning)
}

// wait waits, with the SDK's waiters (polling fast: emulator time is
// scaled), for the instance to reach state.
func wait(t testing.TB, srv *emutest.Server, id string, state ec2types.InstanceStateName) {
	t.Helper()
	ctx := context.Background()
	c := EC2(ctx, srv)
	in := &ec2.DescribeInstancesInput{InstanceIds: []string{id}}
	const limit = 30 * time.Second
	var err error
	switch state {
	case ec2types.InstanceStateNameRunning:
		err = ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
			o.MinDelay, o.MaxDelay = 5*time.Millisecond, 100*time.Millisecond
		}).Wait(ctx, in, limit)
	case ec2types.InstanceStateNameStopped:
		err = ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) {
			o.MinDelay, o.MaxDelay = 5*time.Millisecond, 100*time.Millisecond
		}).Wait(ctx, in, limit)
	default:
		err = fmt.Errorf("no waiter for state %s", state)
	}
	if err != nil {
		t.Fatalf("waiting for %s to be %s: %v", id, state, err)
	}
}

// Credentials are the instance role's credentials as the instance gets
// them: from its metadata service, IMDSv2 only.
func (i Instance) Credentials() aws.CredentialsProvider {
	return aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) {
		o.Client = imds.New(imds.Options{Endpoint: i.IMDS, ClientEnableState: imds.ClientEnabled, EnableFallback: aws.FalseTernary})
	}))
}

// KMS is a KMS client signed with the instance role's credentials: the
// calls the instance itself would make.
func (i Instance) KMS(ctx context.Context, srv *emutest.Server) *kms.Client {
	cfg := srv.Config(ctx, Account, Region)
	cfg.Credentials = i.Credentials()
	return kms.NewFromConfig(cfg)
}

// CloudTrail reads the emulator's CloudTrail view of KMS calls (GET
// /_emu/cloudtrail) of one action ("" for all) after audit position since.
func CloudTrail(t testing.TB, srv *emutest.Server, action string, since int) []awsemu.CloudTrailEvent {
	t.Helper()
	url := srv.URL() + "/_emu/cloudtrail?since=" + strconv.Itoa(since)
	if action != "" {
		url += "&action=" + action
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, body)
	}
	var trail struct{ Records []awsemu.CloudTrailEvent }
	if err := json.Unmarshal(body, &trail); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
	return trail.Records
}

// Context is an event's encryption context, as CloudTrail wrote it.
func Context(ev awsemu.CloudTrailEvent) map[string]string {
	out := map[string]string{}
	raw, _ := ev.RequestParameters["encryptionContext"].(map[string]any)
	for k, v := range raw {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// InstanceContextFindings runs the emulator's invariant checker over what
// happened after audit position since and returns its instance-context
// findings: KMS calls whose context names an instance that came from
// someone else than that instance's role session.
func InstanceContextFindings(srv *emutest.Server, since int) []awsemu.Finding {
	var out []awsemu.Finding
	for _, f := range srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: since}).Findings {
		if f.Check == awsemu.CheckInstanceContext {
			out = append(out, f)
		}
	}
	return out
}
