package awsemu_test

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// TestInstanceBoundDataKeys: what the instance-store agent relies on. An
// instance's role, through its metadata service, gets data keys under a key
// whose policy binds them to the instance (kms:EncryptionContext equal to
// ${ec2:SourceInstanceARN}); another instance can't unwrap them; CloudTrail
// records each call by the instance's session; the checker flags a call
// whose context names another instance.
func TestInstanceBoundDataKeys(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	c := x.EC2(emutest.AcctBuild, emutest.East)
	mark := x.Srv.Mark()
	launch := func() (id string, client *kms.Client) {
		t.Helper()
		run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeM6idLarge,
			IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("amicrypt-instance-store")}}))
		id = aws.ToString(run.Instances[0].InstanceId)
		x.WaitInstance(c, id)
		url, err := x.Srv.Emulator().ServeIMDS(id)
		if err != nil {
			t.Fatal(err)
		}
		cfg := x.Srv.Config(ctx, emutest.AcctBuild, emutest.East)
		cfg.Credentials = aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) {
			o.Client = imds.New(imds.Options{Endpoint: url, ClientEnableState: imds.ClientEnabled})
		}))
		return id, kms.NewFromConfig(cfg, func(o *kms.Options) { o.RetryMaxAttempts = 1 })
	}
	arnOf := func(id string) string { return "arn:aws:ec2:us-east-1:111111111111:instance/" + id }
	a, aKMS := launch()
	b, bKMS := launch()
	const key = "alias/amicrypt-instance-store"
	ctxA := map[string]string{"amicrypt:instance-arn": arnOf(a), "amicrypt:luks-uuid": "6f9619ff-8b86-4d11-b42d-00c04fc964ff"}

	dk, err := aKMS.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(key), KeySpec: "AES_256", EncryptionContext: ctxA})
	if err != nil {
		t.Fatalf("GenerateDataKey by the instance for itself: %v", err)
	}
	if _, err := aKMS.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctxA, KeyId: dk.KeyId}); err != nil {
		t.Fatalf("Decrypt by the same instance: %v", err)
	}
	// A data key bound to another instance: the key policy refuses it.
	ctxB := map[string]string{"amicrypt:instance-arn": arnOf(b), "amicrypt:luks-uuid": "6f9619ff-8b86-4d11-b42d-00c04fc964ff"}
	_, err = aKMS.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(key), KeySpec: "AES_256", EncryptionContext: ctxB})
	emutest.WantCode(t, "GenerateDataKey bound to another instance", err, "AccessDeniedException")
	// The disk moved to instance B: B can't ask with A's context (policy),
	// and with its own context the blob does not open.
	_, err = bKMS.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctxA, KeyId: dk.KeyId})
	emutest.WantCode(t, "Decrypt of A's key by B with A's context", err, "AccessDeniedException")
	_, err = bKMS.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctxB, KeyId: dk.KeyId})
	emutest.WantCode(t, "Decrypt of A's key by B with its own context", err, "InvalidCiphertextException")
	// A user of the account: the key policy gives it no cryptographic use.
	_, err = x.KMS(emutest.AcctBuild, emutest.East).Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctxA})
	emutest.WantCode(t, "Decrypt by a user", err, "AccessDeniedException")

	// CloudTrail: each call, by whom, with its context, on which key.
	resp, err := http.Get(x.Srv.URL() + "/_emu/cloudtrail?action=GenerateDataKey&since=" + itoa(mark))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var trail struct{ Records []awsemu.CloudTrailEvent }
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &trail); err != nil {
		t.Fatal(err)
	}
	if len(trail.Records) != 2 {
		t.Fatalf("GenerateDataKey records: %d, want 2\n%s", len(trail.Records), body)
	}
	first := trail.Records[0]
	ec, _ := first.RequestParameters["encryptionContext"].(map[string]any)
	if first.UserIdentity.Type != "AssumedRole" || first.UserIdentity.ARN != "arn:aws:sts::111111111111:assumed-role/amicrypt-instance-store/"+a ||
		first.UserIdentity.SessionContext == nil || first.UserIdentity.SessionContext.SessionIssuer.ARN != "arn:aws:iam::111111111111:role/amicrypt-instance-store" ||
		ec["amicrypt:instance-arn"] != arnOf(a) || len(first.Resources) != 1 || !strings.Contains(first.Resources[0].ARN, ":key/") ||
		first.ErrorCode != "" || first.EventSource != "kms.amazonaws.com" {
		t.Fatalf("first record: %+v", first)
	}
	if trail.Records[1].ErrorCode != "AccessDeniedException" || strings.Contains(string(body), string(dk.Plaintext)) {
		t.Fatalf("second record: %+v", trail.Records[1])
	}

	// The checker: A's call naming B, and B's call naming A, are findings.
	rep := x.Srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark, Ignore: []string{awsemu.CheckLeftoverInstance}})
	var named []string
	for _, f := range rep.Findings {
		if f.Check == awsemu.CheckInstanceContext {
			named = append(named, f.Resource+" by "+f.Principal[strings.LastIndexByte(f.Principal, '/')+1:])
		}
	}
	sort.Strings(named)
	want := []string{b + " by " + a, a + " by " + b, a + " by packer"}
	sort.Strings(want)
	if strings.Join(named, ",") != strings.Join(want, ",") || len(rep.Findings) != 3 {
		t.Fatalf("checker findings %v (%s)", named, rep)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
