package awsemu

// rules_test.go is the conformance matrix of shared/aws-behaviour.md: one
// entry per rule or fact of sections 1–3 and the two sequences of section
// 4. Facts that other tests already pin down are listed in ruleIndex with
// the tests that cover them (TestRuleIndexNamesRealTests keeps the list
// honest); the rest run here, in TestRulesMatrix, through aws-sdk-go-v2
// clients (or signed raw requests where the wire format is the fact).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// ruleIndex maps each fact of aws-behaviour.md to the tests that cover it.
// An entry whose tests list is empty is covered by TestRulesMatrix alone;
// "TestRulesMatrix/NAME" entries name its subtests.
var ruleIndex = []struct {
	rule, fact string
	tests      []string
}{
	{"1", "EC2 Query/XML envelope, <item> lists, error body", []string{"TestEC2WireDetails", "TestRulesMatrix/1_EC2_error_body"}},
	{"1", "KMS JSON 1.1, HTTP 400 {__type, message}", []string{"TestUnsignedRequest", "TestRulesMatrix/1_KMS_error_body"}},
	{"1", "STS Query/XML, <ErrorResponse><Error><Type>Sender", []string{"TestRulesMatrix/1_STS_error_body"}},
	{"1", "SigV4: wrong secret, unknown key, expired session, per-service codes", []string{"TestAuthErrors", "TestUnsignedRequest", "TestVerifySigV4", "TestParseSigV4Errors"}},
	{"1", "throttling 503 RequestLimitExceeded 'Request limit exceeded.'; 500 InternalError; SDKs retry both", []string{"TestFaultInjection", "TestRequestRateLimits", "TestRulesMatrix/1_SDK_retries_throttling_and_InternalError"}},
	{"1", "DryRun: 412 DryRunOperation / UnauthorizedOperation", []string{"TestEC2WireDetails", "TestEC2DryRunDenied", "TestRulesMatrix/1_DryRun_statuses"}},
	{"2", "instance pending→running, stopping→stopped, shutting-down→terminated", []string{"TestEC2InstanceLifecycle", "TestEC2BuildSequence"}},
	{"2", "launch failure: terminated with Client.InternalError: Client error on launch", []string{"TestEC2AsyncKeyFailures/launch_without_key_permission"}},
	{"2", "snapshot pending+Progress→completed|error; KmsKeyId always a key ARN", []string{"TestEC2SnapshotProgressAndImageState", "TestEC2EncryptionDefaults", "TestEC2AsyncKeyFailures"}},
	{"2", "image pending→available only when every snapshot completes, or failed with StateReason", []string{"TestEC2SnapshotProgressAndImageState", "TestEC2AsyncKeyFailures"}},
	{"2", "copy times grow with size, cross-region factor, first copy full", []string{"TestEC2CopyTimes", "TestLatencyModel"}},
	{"3.1", "no unencrypted copy of encrypted data (CopySnapshot and CopyImage), exact text", []string{"TestEC2ErrorRules/rule_1:_CopySnapshot_unencrypted_copy_of_encrypted", "TestEC2ErrorRules/rule_1:_CopyImage_unencrypted_copy_of_encrypted"}},
	{"3.1", "without Encrypted, a copy of encrypted data stays encrypted", []string{"TestRulesMatrix/3.1_copy_without_Encrypted_stays_encrypted"}},
	{"3.2", "KmsKeyId needs Encrypted=true (emulator convention text)", []string{"TestEC2ErrorRules/rule_2:_CopySnapshot_KmsKeyId_without_Encrypted", "TestEC2ErrorRules/rule_2:_CopyImage_KmsKeyId_with_Encrypted=false", "TestRulesMatrix/3.2_CopyImage_KmsKeyId_without_Encrypted"}},
	{"3.2", "without KmsKeyId an encrypted copy uses the caller's default EBS key", []string{"TestEC2EncryptionDefaults", "TestRulesMatrix/3.2_default_key_fallback_for_CopyImage"}},
	{"3.3", "AWS-managed key: AMI share InvalidParameter, snapshot share OperationNotPermitted (both texts)", []string{"TestEC2ErrorRules/rule_3:_share_an_AMI_under_the_AWS_managed_key", "TestEC2ErrorRules/rule_3:_share_a_snapshot_under_the_AWS_managed_key", "TestRulesMatrix/3.3_managed_key_share_through_the_other_parameter_forms"}},
	{"3.3", "encrypted snapshots and AMIs never public", []string{"TestEC2ErrorRules/rule_3:_an_encrypted_AMI_can't_be_public", "TestEC2ErrorRules/rule_3:_an_encrypted_snapshot_can't_be_public", "TestRulesMatrix/3.3_unencrypted_AMI_may_be_public", "TestRulesMatrix/3.3_encrypted_never_public_through_the_other_parameter_forms"}},
	{"3.4", "without the share: InvalidAMIID.NotFound / InvalidSnapshot.NotFound", []string{"TestEC2ErrorRules/rule_4:_unshared_AMI_is_invisible", "TestEC2ErrorRules/rule_4:_unshared_snapshot_is_invisible", "TestEC2CrossAccountCopySequence", "TestRulesMatrix/3.4_unshared_snapshot_can't_be_copied_or_restored"}},
	{"3.4", "without key permission (or with a disabled/unknown destination key) the copy is accepted and fails later", []string{"TestEC2AsyncKeyFailures"}},
	{"3.4", "key permission through a key-policy statement instead of a grant", []string{"TestRulesMatrix/3.4_key_policy_statement_is_enough"}},
	{"3.4", "the using account's own IAM must allow the key operations", []string{"TestRulesMatrix/3.4_using_account's_IAM_deny"}},
	{"3.4", "a grant still propagating does not count yet", []string{"TestKMSGrantsCrossAccountAndPropagation", "TestRulesMatrix/3.4_grant_not_yet_effective"}},
	{"3.4", "all three permissions needed: AMI shared but snapshot not", []string{"TestRulesMatrix/3.4_snapshot_not_shared"}},
	{"3.4", "each of the five source-key operations is needed", []string{"TestRulesMatrix/3.4_every_source-key_operation_is_needed"}},
	{"3.4/3.8", "a key is usable only in its region: a destination key of another region fails the copy", []string{"TestRulesMatrix/3.4_destination_key_of_another_region"}},
	{"3.5", "launch with an unusable (disabled) volume key: Client error on launch", []string{"TestRulesMatrix/3.5_launch_with_an_unusable_volume_key"}},
	{"3.5", "launch without key permission: Client.InternalError: Client error on launch", []string{"TestEC2AsyncKeyFailures/launch_without_key_permission", "TestEC2AsyncKeyFailures/launch_with_a_grant"}},
	{"3.5", "Auto Scaling service-linked role must be allowed on the key (policy or grant)", []string{"TestEC2AutoScalingLaunchKeyAccess", "TestRulesMatrix/3.5_Auto_Scaling_service-linked_role"}},
	{"3.6", "tags per account; CopyImageTags copies only the caller's; TagSpecifications", []string{"TestEC2TagsPerAccount", "TestEC2CrossAccountCopySequence"}},
	{"3.7", "alias/aws/ebs everywhere, KeyManager AWS, only EC2 in its account; CreateGrant/PutKeyPolicy/ScheduleKeyDeletion AccessDenied", []string{"TestKMSAWSManagedKeyRules", "TestKMSDescribeKeyResolution"}},
	{"3.8", "key ID, key ARN, alias name, alias ARN; alias only in own account; region-bound; mrk replicas", []string{"TestKMSDescribeKeyResolution", "TestKMSMultiRegionReplica", "TestRulesMatrix/3.8_identifier_forms_across_accounts_and_regions"}},
	{"3.8", "a key is administered only in its own account (GetKeyPolicy, PutKeyPolicy, Enable/DisableKey, ScheduleKeyDeletion, CreateAlias)", []string{"TestRulesMatrix/3.8_key_administration_stays_in_the_key's_account"}},
	{"3.8", "DescribeKey fields and states; DisabledException, KMSInvalidStateException, NotFoundException, AccessDeniedException", []string{"TestKMSCryptoAndKeyLifecycle", "TestRulesMatrix/3.8_DescribeKey_states_and_errors"}},
	{"3.9", "CreateGrant (DryRun, GrantId, GrantToken), propagation, ListGrants, RetireGrant, RevokeGrant; a grantee grants onwards only its own operations", []string{"TestRulesMatrix/3.5_Auto_Scaling_service-linked_role", "TestKMSGrantsCrossAccountAndPropagation", "TestKMSSlowGrantFault", "TestKMSRetireByTokenCancelDeletionAndRegrant", "TestRulesMatrix/3.9_RetireGrant_and_RevokeGrant_principals"}},
	{"3.10", "ClientToken idempotency and IdempotentParameterMismatch", []string{"TestEC2CrossAccountCopySequence", "TestRulesMatrix/3.10_RunInstances_ClientToken", "TestRulesMatrix/3.10_ClientToken_longer_than_64"}},
	{"3.11", "AMI names unique per account and region; 3–128 of the allowed characters", []string{"TestEC2ErrorRules/rule_11:_duplicate_AMI_name", "TestEC2ErrorRules/rule_11:_AMI_name_too_short", "TestRulesMatrix/3.11_AMI_name_boundaries_and_scope"}},
	{"3.12", "DeleteSnapshot InvalidSnapshot.InUse; DeregisterImage keeps snapshots unless DeleteAssociatedSnapshots", []string{"TestEC2ErrorRules/rule_12:_snapshot_in_use", "TestEC2ImageAttributesAndDeregistration"}},
	{"3.13", "concurrent copy quotas: ResourceLimitExceeded, per destination account-region", []string{"TestEC2Quotas", "TestRulesMatrix/3.13_quotas_per_account-region"}},
	{"3.13", "request token buckets per account-region, Describe* separate from mutating", []string{"TestRequestRateLimits", "TestAWSRequestRates"}},
	{"3.14", "eventual consistency: *.NotFound right after create in Describe* and CreateTags", []string{"TestEC2Faults"}},
	{"3.15", "STS AssumeRole, ExternalId, AccessDenied text, GetCallerIdentity", []string{"TestAssumeRole", "TestAssumeRoleChainingAndIAMDeny", "TestGetCallerIdentity", "TestRulesMatrix/3.15_AssumeRole_denial_text"}},
	{"4", "build sequence end to end", []string{"TestEC2BuildSequence"}},
	{"4", "cross-account re-encrypted copy end to end", []string{"TestEC2CrossAccountCopySequence", "TestEC2CrossAccountScenarios", "TestRulesCrossAccountSequence"}},
}

// TestRuleIndexNamesRealTests fails when ruleIndex names a test function
// that does not exist in this package, so the index can't rot silently.
func TestRuleIndexNamesRealTests(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for name, obj := range file.Scope.Objects {
			if obj.Kind.String() == "func" {
				funcs[name] = true
			}
		}
	}
	matrix := map[string]bool{}
	for _, c := range rulesMatrix() {
		matrix[strings.ReplaceAll(c.rule+" "+c.name, " ", "_")] = true
	}
	for _, r := range ruleIndex {
		if len(r.tests) == 0 {
			t.Errorf("rule %s %q: no test covers it", r.rule, r.fact)
		}
		for _, name := range r.tests {
			top, sub, _ := strings.Cut(name, "/")
			if !funcs[top] {
				t.Errorf("rule %s %q: test %s does not exist", r.rule, r.fact, top)
			}
			if top == "TestRulesMatrix" && !matrix[sub] {
				t.Errorf("rule %s %q: TestRulesMatrix has no case %s", r.rule, r.fact, sub)
			}
		}
	}
}

// ruleCase is one entry of the matrix. world and opts, when set, give the
// case an emulator of its own; otherwise it shares one with the others.
type ruleCase struct {
	rule, name string
	world      func(w *World)
	opts       Options
	own        bool // an emulator of its own even without options
	run        func(t *testing.T, x *ec2Env)
}

// rulesWorld is the default world plus users with IAM deny lists.
func rulesWorld(t *testing.T, edit func(w *World)) *World {
	t.Helper()
	w, err := DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(w)
	}
	return w
}

func addUser(w *World, account string, u WorldUser) {
	for i := range w.Accounts {
		if w.Accounts[i].ID == account {
			w.Accounts[i].Users = append(w.Accounts[i].Users, u)
		}
	}
}

// userCfg is an aws.Config of account for a user other than the first.
func (x *ec2Env) userCfg(account, region, accessKey, secret string) aws.Config {
	cfg := x.srv.Config(x.ctx, account, region)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(accessKey, secret, "")
	cfg.RetryMaxAttempts = sdkAttempts
	return cfg
}

// rawCall sends a signed request to the emulator and returns its status and
// body: the wire format itself is what some facts are about.
func (x *ec2Env) rawCall(account, region, service, body string, header map[string]string) (int, string) {
	x.t.Helper()
	req, err := http.NewRequestWithContext(x.ctx, http.MethodPost, x.srv.URL()+"/", strings.NewReader(body))
	if err != nil {
		x.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	ak, sk, err := x.srv.Emulator().Credentials(account)
	if err != nil {
		x.t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(x.ctx, aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, req, hex.EncodeToString(sum[:]), service, region, time.Now()); err != nil {
		x.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		x.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// copyOf copies srcAMI (in srcRegion) into account/region and waits until
// the copy leaves pending.
func (x *ec2Env) copyOf(c *ec2.Client, srcAMI, srcRegion, name string, encrypted *bool, keyRef string) types.Image {
	x.t.Helper()
	in := &ec2.CopyImageInput{SourceImageId: aws.String(srcAMI), SourceRegion: aws.String(srcRegion), Name: aws.String(name), Encrypted: encrypted}
	if keyRef != "" {
		in.KmsKeyId = aws.String(keyRef)
	}
	out := must[*ec2.CopyImageOutput](x.t, "CopyImage "+name)(c.CopyImage(x.ctx, in))
	return x.waitImage(c, aws.ToString(out.ImageId))
}

// ownEncryptedAMI is an available AMI of account in region encrypted under
// keyRef, made by copying the public seed AMI (cheaper than a launch).
func (x *ec2Env) ownEncryptedAMI(account, region, keyRef, name string) (amiID, snapID string) {
	x.t.Helper()
	img := x.copyOf(x.ec2(account, region), seedImageIn(region), region, name, aws.Bool(true), keyRef)
	if img.State != types.ImageStateAvailable {
		x.t.Fatalf("encrypted AMI %s: %s %+v", name, img.State, img.StateReason)
	}
	return aws.ToString(img.ImageId), aws.ToString(img.BlockDeviceMappings[0].Ebs.SnapshotId)
}

// wantFailedOnKey asserts the rule 3.4 convention: image failed with
// Client.InvalidKMSKey.InvalidState, naming the key and the caller account.
func wantFailedOnKey(t *testing.T, img types.Image, key, account string) {
	t.Helper()
	if img.State != types.ImageStateFailed || img.StateReason == nil ||
		aws.ToString(img.StateReason.Code) != "Client.InvalidKMSKey.InvalidState" ||
		!strings.Contains(aws.ToString(img.StateReason.Message), key) || !strings.Contains(aws.ToString(img.StateReason.Message), account) {
		t.Fatalf("image %s %+v: want failed, Client.InvalidKMSKey.InvalidState naming %s and %s", img.State, img.StateReason, key, account)
	}
}

// emuCode is the code of an *APIError the emulator's Go API returned.
func emuCode(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	if err != nil {
		return "not-an-APIError: " + err.Error()
	}
	return ""
}

var sourceKeyGrantOps = []kmstypes.GrantOperation{"Decrypt", "DescribeKey", "CreateGrant", "ReEncryptFrom", "GenerateDataKeyWithoutPlaintext"}

func rulesMatrix() []ruleCase {
	return []ruleCase{
		// Section 1: wire protocols.
		{rule: "1", name: "EC2 error body", run: func(t *testing.T, x *ec2Env) {
			status, body := x.rawCall(acctBuild, east, "ec2", url.Values{"Action": {"DescribeImages"}, "Version": {"2016-11-15"}, "ImageId.1": {"ami-0123456789abcdef0"}}.Encode(),
				map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
			re := regexp.MustCompile(`(?s)<Response>\s*<Errors>\s*<Error>\s*<Code>InvalidAMIID\.NotFound</Code>\s*<Message>The image id ('|&#39;)\[ami-0123456789abcdef0\]('|&#39;) does not exist</Message>\s*</Error>\s*</Errors>\s*<RequestID>[^<]+</RequestID>\s*</Response>`)
			if status != 400 || !re.MatchString(body) {
				t.Fatalf("HTTP %d %s", status, body)
			}
		}},
		{rule: "1", name: "KMS error body", run: func(t *testing.T, x *ec2Env) {
			status, body := x.rawCall(acctBuild, east, "kms", `{"KeyId":"alias/nope"}`,
				map[string]string{"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.DescribeKey"})
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			if status != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Type != "NotFoundException" || e.Message == "" {
				t.Fatalf("HTTP %d %s", status, body)
			}
		}},
		{rule: "1", name: "STS error body", run: func(t *testing.T, x *ec2Env) {
			role := "arn:aws:iam::222222222222:role/amicrypt-copy"
			status, body := x.rawCall(acctT3, east, "sts", url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {role}, "RoleSessionName": {"s1"}}.Encode(),
				map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
			re := regexp.MustCompile(`(?s)<ErrorResponse xmlns="https://sts\.amazonaws\.com/doc/2011-06-15/">\s*<Error>\s*<Type>Sender</Type>\s*<Code>AccessDenied</Code>\s*<Message>User: arn:aws:iam::333333333333:user/admin is not authorized to perform: sts:AssumeRole on resource: ` +
				regexp.QuoteMeta(role) + `</Message>\s*</Error>\s*<RequestId>[^<]+</RequestId>\s*</ErrorResponse>`)
			if status != 403 || !re.MatchString(body) {
				t.Fatalf("HTTP %d %s", status, body)
			}
		}},
		{rule: "1", name: "SDK retries throttling and InternalError",
			opts: Options{Faults: &FaultProfile{Rules: []FaultRule{
				{Kind: FaultThrottle, Action: "DescribeImages", Nth: []int{1}},
				{Kind: FaultInternalError, Action: "DescribeSnapshots", Nth: []int{1}},
			}}},
			run: func(t *testing.T, x *ec2Env) {
				c := ec2.NewFromConfig(x.srv.Config(x.ctx, acctBuild, east)) // the SDK's default retryer
				if _, err := c.DescribeImages(x.ctx, &ec2.DescribeImagesInput{ImageIds: []string{seedAMI}}); err != nil {
					t.Fatalf("DescribeImages after one throttle: %v", err)
				}
				if _, err := c.DescribeSnapshots(x.ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}}); err != nil {
					t.Fatalf("DescribeSnapshots after one InternalError: %v", err)
				}
				for action, want := range map[string][2]any{"DescribeImages": {"RequestLimitExceeded", 503}, "DescribeSnapshots": {"InternalError", 500}} {
					entries := x.srv.Emulator().Audit(AuditFilter{Action: action})
					if len(entries) != 2 || entries[0].Outcome != want[0] || entries[0].HTTPStatus != want[1] || entries[1].Outcome != "ok" {
						t.Fatalf("%s audit: %+v, want %v then ok", action, entries, want)
					}
				}
			}},
		{rule: "1", name: "DryRun statuses",
			world: func(w *World) {
				addUser(w, acctT3, WorldUser{Name: "nocopy", AccessKey: "AKIA3333NOCOPY000000", SecretKey: "s", Deny: []string{"ec2:CopyImage"}})
			},
			run: func(t *testing.T, x *ec2Env) {
				c := x.ec2(acctT3, east)
				_, err := c.CopyImage(x.ctx, &ec2.CopyImageInput{SourceImageId: aws.String(seedAMI), SourceRegion: aws.String(east), Name: aws.String("dry-1"), DryRun: aws.Bool(true)})
				if apiCode(err) != "DryRunOperation" || apiMessage(err) != "Request would have succeeded, but DryRun flag is set." || httpStatus(err) != 412 {
					t.Fatalf("allowed DryRun: HTTP %d %v", httpStatus(err), err)
				}
				denied := ec2.NewFromConfig(x.userCfg(acctT3, east, "AKIA3333NOCOPY000000", "s"))
				_, err = denied.CopyImage(x.ctx, &ec2.CopyImageInput{SourceImageId: aws.String(seedAMI), SourceRegion: aws.String(east), Name: aws.String("dry-2"), DryRun: aws.Bool(true)})
				if apiCode(err) != "UnauthorizedOperation" || httpStatus(err) != 403 {
					t.Fatalf("denied DryRun: HTTP %d %v", httpStatus(err), err)
				}
				if n := len(x.srv.Emulator().Audit(AuditFilter{Action: "CopyImage", Outcome: "ok"})); n != 0 {
					t.Fatalf("a dry run copied: %d ok CopyImage calls", n)
				}
			}},

		// Section 3.
		{rule: "3.1", name: "copy without Encrypted stays encrypted", run: func(t *testing.T, x *ec2Env) {
			c := x.ec2(acctBuild, east)
			buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
			amiID, snapID := x.ownEncryptedAMI(acctBuild, east, buildKey, "r31-src")
			// Still encrypted, and (rule 3.2) under the caller's default key.
			defaultKey := x.keyARN(acctBuild, east, "alias/aws/ebs")
			img := x.copyOf(c, amiID, east, "r31-copy", nil, "")
			if ebs := img.BlockDeviceMappings[0].Ebs; img.State != types.ImageStateAvailable || !aws.ToBool(ebs.Encrypted) || aws.ToString(ebs.KmsKeyId) != defaultKey {
				t.Fatalf("CopyImage without Encrypted: %s encrypted=%v key=%s, want %s", img.State, aws.ToBool(ebs.Encrypted), aws.ToString(ebs.KmsKeyId), defaultKey)
			}
			out := must[*ec2.CopySnapshotOutput](t, "CopySnapshot")(c.CopySnapshot(x.ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(snapID), SourceRegion: aws.String(east)}))
			if s := x.waitSnapshot(c, aws.ToString(out.SnapshotId)); s.State != types.SnapshotStateCompleted || !aws.ToBool(s.Encrypted) || aws.ToString(s.KmsKeyId) != defaultKey {
				t.Fatalf("CopySnapshot without Encrypted: %s encrypted=%v key=%q, want %s", s.State, aws.ToBool(s.Encrypted), aws.ToString(s.KmsKeyId), defaultKey)
			}
		}},
		{rule: "3.2", name: "CopyImage KmsKeyId without Encrypted", run: func(t *testing.T, x *ec2Env) {
			_, err := x.ec2(acctBuild, east).CopyImage(x.ctx, &ec2.CopyImageInput{SourceImageId: aws.String(seedAMI), SourceRegion: aws.String(east), Name: aws.String("r32-a"),
				KmsKeyId: aws.String("alias/amicrypt-build")})
			if apiCode(err) != "InvalidParameterDependency" || apiMessage(err) != "The parameter KmsKeyId requires the parameter Encrypted to be set." {
				t.Fatalf("got %v", err)
			}
		}},
		{rule: "3.2", name: "default key fallback for CopyImage", run: func(t *testing.T, x *ec2Env) {
			for _, region := range []string{east, west} { // same region, and a copy into another region
				want := x.keyARN(acctT2, region, "alias/aws/ebs")
				img := x.copyOf(x.ec2(acctT2, region), seedAMI, east, "r32-default-"+region, aws.Bool(true), "")
				ebs := img.BlockDeviceMappings[0].Ebs
				if img.State != types.ImageStateAvailable || !aws.ToBool(ebs.Encrypted) || aws.ToString(ebs.KmsKeyId) != want {
					t.Fatalf("%s: %s encrypted=%v key=%s, want %s", region, img.State, aws.ToBool(ebs.Encrypted), aws.ToString(ebs.KmsKeyId), want)
				}
			}
		}},
		{rule: "3.3", name: "managed key share through the other parameter forms", run: func(t *testing.T, x *ec2Env) {
			amiID, snapID := x.ownEncryptedAMI(acctBuild, east, "alias/aws/ebs", "r33-managed")
			c := x.ec2(acctBuild, east)
			_, err := c.ModifyImageAttribute(x.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID), Attribute: aws.String("launchPermission"),
				OperationType: types.OperationTypeAdd, UserIds: []string{acctT2}})
			if apiCode(err) != "InvalidParameter" || apiMessage(err) != "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot." {
				t.Fatalf("ModifyImageAttribute (UserId.N form): %v", err)
			}
			_, err = c.ModifySnapshotAttribute(x.ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snapID), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
				CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: []types.CreateVolumePermission{{UserId: aws.String(acctT2)}}}})
			if apiCode(err) != "OperationNotPermitted" || apiMessage(err) != "Encrypted snapshots with EBS default key cannot be shared" {
				t.Fatalf("ModifySnapshotAttribute (CreateVolumePermission.Add form): %v", err)
			}
			if _, err := x.ec2(acctT2, east).DescribeImages(x.ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}}); apiCode(err) != "InvalidAMIID.NotFound" {
				t.Fatalf("the refused share still shared: %v", err)
			}
		}},
		{rule: "3.3", name: "encrypted never public through the other parameter forms", run: func(t *testing.T, x *ec2Env) {
			amiID, snapID := x.ownEncryptedAMI(acctBuild, east, "alias/amicrypt-build", "r33-public")
			c := x.ec2(acctBuild, east)
			_, err := c.ModifyImageAttribute(x.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID), Attribute: aws.String("launchPermission"),
				OperationType: types.OperationTypeAdd, UserGroups: []string{"all"}})
			if apiCode(err) != "InvalidParameter" {
				t.Fatalf("ModifyImageAttribute UserGroup.1=all: %v", err)
			}
			_, err = c.ModifySnapshotAttribute(x.ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snapID), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
				CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: []types.CreateVolumePermission{{Group: types.PermissionGroupAll}}}})
			if apiCode(err) != "OperationNotPermitted" {
				t.Fatalf("ModifySnapshotAttribute CreateVolumePermission.Add group all: %v", err)
			}
			if img := x.image(c, amiID); aws.ToBool(img.Public) {
				t.Fatal("the encrypted AMI became public")
			}
		}},
		{rule: "3.4", name: "unshared snapshot can't be copied or restored", run: func(t *testing.T, x *ec2Env) {
			_, snapID := x.ownEncryptedAMI(acctBuild, east, "alias/amicrypt-build", "r34-unshared-snap")
			c := x.ec2(acctT2, east)
			want := "The snapshot '" + snapID + "' does not exist."
			_, err := c.CopySnapshot(x.ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(snapID), SourceRegion: aws.String(east), Encrypted: aws.Bool(true)})
			if apiCode(err) != "InvalidSnapshot.NotFound" || apiMessage(err) != want {
				t.Fatalf("CopySnapshot: %v", err)
			}
			_, err = c.CreateVolume(x.ctx, &ec2.CreateVolumeInput{SnapshotId: aws.String(snapID), AvailabilityZone: aws.String("us-east-1a")})
			if apiCode(err) != "InvalidSnapshot.NotFound" {
				t.Fatalf("CreateVolume: %v", err)
			}
		}},
		{rule: "3.3", name: "unencrypted AMI may be public", run: func(t *testing.T, x *ec2Env) {
			c := x.ec2(acctBuild, east)
			img := x.copyOf(c, seedAMI, east, "r33-plain", nil, "")
			must[*ec2.ModifyImageAttributeOutput](t, "public")(c.ModifyImageAttribute(x.ctx, &ec2.ModifyImageAttributeInput{ImageId: img.ImageId,
				LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{Group: types.PermissionGroupAll}}}}))
			if got := x.image(x.ec2(acctT3, east), aws.ToString(img.ImageId)); !aws.ToBool(got.Public) {
				t.Fatalf("public AMI seen by another account: %+v", got)
			}
		}},
		{rule: "3.4", name: "key policy statement is enough", run: func(t *testing.T, x *ec2Env) {
			k := x.kms(acctBuild, east)
			policy := `{"Version":"2012-10-17","Statement":[
			 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
			 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":["kms:DescribeKey","kms:Decrypt","kms:CreateGrant","kms:ReEncryptFrom","kms:GenerateDataKeyWithoutPlaintext"],"Resource":"*"}]}`
			key := must[*kms.CreateKeyOutput](t, "CreateKey")(k.CreateKey(x.ctx, &kms.CreateKeyInput{Policy: aws.String(policy)}))
			keyARN := aws.ToString(key.KeyMetadata.Arn)
			amiID, snapID := x.ownEncryptedAMI(acctBuild, east, keyARN, "r34-policy")
			x.share(acctBuild, east, amiID, snapID, acctT3)
			x.share(acctBuild, east, amiID, snapID, acctT2)
			if img := x.copyOf(x.ec2(acctT3, east), amiID, east, "r34-policy-copy", aws.Bool(true), "alias/amicrypt-target"); img.State != types.ImageStateAvailable {
				t.Fatalf("copy by the account the key policy allows: %s %+v", img.State, img.StateReason)
			}
			wantFailedOnKey(t, x.copyOf(x.ec2(acctT2, east), amiID, east, "r34-policy-copy", aws.Bool(true), "alias/amicrypt-target"), keyARN, acctT2)
		}},
		{rule: "3.4", name: "using account's IAM deny",
			world: func(w *World) {
				addUser(w, acctT2, WorldUser{Name: "nodecrypt", AccessKey: "AKIA2222NODECRYPT000", SecretKey: "s", Deny: []string{"kms:Decrypt", "kms:ReEncrypt*"}})
			},
			run: func(t *testing.T, x *ec2Env) {
				buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
				amiID, snapID := x.ownEncryptedAMI(acctBuild, east, buildKey, "r34-iam")
				x.share(acctBuild, east, amiID, snapID, acctT2)
				must[*kms.CreateGrantOutput](t, "CreateGrant")(x.kms(acctBuild, east).CreateGrant(x.ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
					GranteePrincipal: aws.String(acctT2), Operations: sourceKeyGrantOps}))
				limited := ec2.NewFromConfig(x.userCfg(acctT2, east, "AKIA2222NODECRYPT000", "s"))
				wantFailedOnKey(t, x.copyOf(limited, amiID, east, "r34-iam-denied", aws.Bool(true), "alias/amicrypt-target"), buildKey, acctT2)
				if img := x.copyOf(x.ec2(acctT2, east), amiID, east, "r34-iam-ok", aws.Bool(true), "alias/amicrypt-target"); img.State != types.ImageStateAvailable {
					t.Fatalf("same grant, user whose IAM allows: %s %+v", img.State, img.StateReason)
				}
			}},
		{rule: "3.4", name: "grant not yet effective", opts: Options{GrantDelay: 10 * time.Minute}, run: func(t *testing.T, x *ec2Env) {
			buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
			amiID, snapID := x.ownEncryptedAMI(acctBuild, east, buildKey, "r34-delay")
			x.share(acctBuild, east, amiID, snapID, acctT2)
			must[*kms.CreateGrantOutput](t, "CreateGrant")(x.kms(acctBuild, east).CreateGrant(x.ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(acctT2), Operations: sourceKeyGrantOps}))
			wantFailedOnKey(t, x.copyOf(x.ec2(acctT2, east), amiID, east, "r34-delay-early", aws.Bool(true), "alias/amicrypt-target"), buildKey, acctT2)
			x.srv.Emulator().Advance(11 * time.Minute)
			if img := x.copyOf(x.ec2(acctT2, east), amiID, east, "r34-delay-late", aws.Bool(true), "alias/amicrypt-target"); img.State != types.ImageStateAvailable {
				t.Fatalf("copy after the grant took effect: %s %+v", img.State, img.StateReason)
			}
		}},
		{rule: "3.4", name: "snapshot not shared", run: func(t *testing.T, x *ec2Env) {
			buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
			amiID, snapID := x.ownEncryptedAMI(acctBuild, east, buildKey, "r34-nosnap")
			must[*ec2.ModifyImageAttributeOutput](t, "launch permission only")(x.ec2(acctBuild, east).ModifyImageAttribute(x.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
				LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(acctT2)}}}}))
			must[*kms.CreateGrantOutput](t, "CreateGrant")(x.kms(acctBuild, east).CreateGrant(x.ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(acctT2), Operations: sourceKeyGrantOps}))
			c := x.ec2(acctT2, east)
			if _, err := c.DescribeSnapshots(x.ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}}); apiCode(err) != "InvalidSnapshot.NotFound" {
				t.Fatalf("DescribeSnapshots of the unshared snapshot: %v", err)
			}
			out, err := c.CopyImage(x.ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(east), Name: aws.String("r34-nosnap-copy"),
				Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-target")})
			if err == nil {
				if img := x.waitImage(c, aws.ToString(out.ImageId)); img.State == types.ImageStateAvailable {
					t.Fatalf("copied an AMI whose snapshot was not shared (no createVolumePermission): %+v", img)
				}
			}
		}},
		{rule: "3.4", name: "every source-key operation is needed", own: true, run: func(t *testing.T, x *ec2Env) {
			buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
			amiID, snapID := x.ownEncryptedAMI(acctBuild, east, buildKey, "r34-ops")
			for i, missing := range sourceKeyGrantOps {
				t.Run(string(missing), func(t *testing.T) {
					// Each case uses an account of its own: grants can't be narrowed.
					account := []string{acctT2, acctT3, acctT4, acctT2, acctT3}[i]
					region := []string{east, east, east, west, west}[i]
					var ops []kmstypes.GrantOperation
					for _, op := range sourceKeyGrantOps {
						if op != missing {
							ops = append(ops, op)
						}
					}
					grant := must[*kms.CreateGrantOutput](t, "CreateGrant")(x.kms(acctBuild, east).CreateGrant(x.ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
						GranteePrincipal: aws.String(account), Operations: ops}))
					defer func() {
						must[*kms.RevokeGrantOutput](t, "RevokeGrant")(x.kms(acctBuild, east).RevokeGrant(x.ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: grant.GrantId}))
					}()
					x.share(acctBuild, east, amiID, snapID, account)
					img := x.copyOf(x.ec2(account, region), amiID, east, "r34-ops-"+string(missing), aws.Bool(true), "alias/amicrypt-target")
					wantFailedOnKey(t, img, buildKey, account)
				})
			}
		}},
		{rule: "3.4", name: "destination key of another region", run: func(t *testing.T, x *ec2Env) {
			eastKey := x.keyARN(acctT3, east, "alias/amicrypt-target")
			wantFailedOnKey(t, x.copyOf(x.ec2(acctT3, west), seedAMI, east, "r34-region-key", aws.Bool(true), eastKey), eastKey, acctT3)
		}},
		{rule: "3.5", name: "launch with an unusable volume key", run: func(t *testing.T, x *ec2Env) {
			k := x.kms(acctT4, east)
			key := must[*kms.CreateKeyOutput](t, "CreateKey")(k.CreateKey(x.ctx, &kms.CreateKeyInput{}))
			must[*kms.DisableKeyOutput](t, "DisableKey")(k.DisableKey(x.ctx, &kms.DisableKeyInput{KeyId: key.KeyMetadata.KeyId}))
			c := x.ec2(acctT4, east)
			run := must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(x.ctx, &ec2.RunInstancesInput{ImageId: aws.String(seedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
				BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{Encrypted: aws.Bool(true), KmsKeyId: key.KeyMetadata.Arn}}}}))
			if run.Instances[0].State.Name != types.InstanceStateNamePending {
				t.Fatalf("launch state %s, want pending", run.Instances[0].State.Name)
			}
			inst := x.waitInstance(c, aws.ToString(run.Instances[0].InstanceId))
			if inst.State.Name != types.InstanceStateNameTerminated || inst.StateReason == nil || aws.ToString(inst.StateReason.Code) != "Client.InternalError" ||
				aws.ToString(inst.StateReason.Message) != "Client.InternalError: Client error on launch" {
				t.Fatalf("instance %s %+v", inst.State.Name, inst.StateReason)
			}
		}},
		{rule: "3.5", name: "Auto Scaling service-linked role", run: func(t *testing.T, x *ec2Env) {
			emu := x.srv.Emulator()
			buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
			// Same account: the default key policy names the account root,
			// which does not reach the service-linked role.
			ownAMI, _ := x.ownEncryptedAMI(acctBuild, east, buildKey, "r35-own")
			if err := emu.CheckLaunch(acctBuild, east, AutoScalingRoleARN(acctBuild), ownAMI); emuCode(err) != "Client.InvalidKMSKey.InvalidState" {
				t.Fatalf("same-account launch by the service-linked role with only the root in the key policy: %v", err)
			}
			// A key policy statement naming the role is enough in its account.
			slrKeyPolicy := `{"Version":"2012-10-17","Statement":[
			 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
			 {"Effect":"Allow","Principal":{"AWS":"` + AutoScalingRoleARN(acctBuild) + `"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey","kms:CreateGrant"],"Resource":"*"}]}`
			slrKey := must[*kms.CreateKeyOutput](t, "CreateKey")(x.kms(acctBuild, east).CreateKey(x.ctx, &kms.CreateKeyInput{Policy: aws.String(slrKeyPolicy)}))
			slrAMI, _ := x.ownEncryptedAMI(acctBuild, east, aws.ToString(slrKey.KeyMetadata.Arn), "r35-slr-policy")
			if err := emu.CheckLaunch(acctBuild, east, AutoScalingRoleARN(acctBuild), slrAMI); err != nil {
				t.Fatalf("key policy naming the service-linked role: %v", err)
			}
			// The AWS managed key needs no extra authorization.
			managedAMI, _ := x.ownEncryptedAMI(acctBuild, east, "", "r35-managed")
			if err := emu.CheckLaunch(acctBuild, east, AutoScalingRoleARN(acctBuild), managedAMI); err != nil {
				t.Fatalf("AMI under alias/aws/ebs: %v", err)
			}
			// Cross account: T2 holds a grant (to its root) on S's key; that
			// does not reach T2's service-linked role, a grant T2 creates
			// for the role does.
			x.share(acctBuild, east, ownAMI, aws.ToString(x.image(x.ec2(acctBuild, east), ownAMI).BlockDeviceMappings[0].Ebs.SnapshotId), acctT2)
			must[*kms.CreateGrantOutput](t, "CreateGrant to T2")(x.kms(acctBuild, east).CreateGrant(x.ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(acctT2), Operations: sourceKeyGrantOps}))
			slr := AutoScalingRoleARN(acctT2)
			if err := emu.CheckLaunch(acctT2, east, slr, ownAMI); emuCode(err) != "Client.InvalidKMSKey.InvalidState" {
				t.Fatalf("service-linked role covered by a grant to its account root: %v", err)
			}
			// T2's own grant caps what it can grant onwards.
			_, err := x.kms(acctT2, east).CreateGrant(x.ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(slr), Operations: append([]kmstypes.GrantOperation{"Encrypt"}, sourceKeyGrantOps...)})
			if apiCode(err) != "AccessDeniedException" {
				t.Fatalf("T2 granting an operation its own grant lacks: %v", err)
			}
			must[*kms.CreateGrantOutput](t, "CreateGrant by T2 for its role")(x.kms(acctT2, east).CreateGrant(x.ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(slr), Operations: sourceKeyGrantOps}))
			if err := emu.CheckLaunch(acctT2, east, slr, ownAMI); err != nil {
				t.Fatalf("with the grant T2 created for its service-linked role: %v", err)
			}
		}},
		{rule: "3.8", name: "identifier forms across accounts and regions", run: func(t *testing.T, x *ec2Env) {
			buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
			must[*kms.CreateGrantOutput](t, "CreateGrant")(x.kms(acctBuild, east).CreateGrant(x.ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(acctT2), Operations: sourceKeyGrantOps}))
			t2 := x.kms(acctT2, east)
			keyID := buildKey[strings.LastIndexByte(buildKey, '/')+1:]
			tests := []struct{ ref, code string }{
				{buildKey, ""},
				{"arn:aws:kms:us-east-1:111111111111:alias/amicrypt-build", ""},
				{"alias/amicrypt-build", "NotFoundException"},
				{keyID, "NotFoundException"},
				{"arn:aws:kms:us-west-2:111111111111:alias/amicrypt-build", "NotFoundException"},
				{"arn:aws:kms:us-west-2:111111111111:key/" + keyID, "NotFoundException"},
			}
			for _, tc := range tests {
				out, err := t2.DescribeKey(x.ctx, &kms.DescribeKeyInput{KeyId: aws.String(tc.ref)})
				if apiCode(err) != tc.code {
					t.Errorf("DescribeKey %s from 222222222222: %v, want %q", tc.ref, err, tc.code)
					continue
				}
				if err == nil && aws.ToString(out.KeyMetadata.Arn) != buildKey {
					t.Errorf("DescribeKey %s: %s", tc.ref, aws.ToString(out.KeyMetadata.Arn))
				}
			}
		}},
		{rule: "3.8", name: "DescribeKey states and errors", run: func(t *testing.T, x *ec2Env) {
			c := x.kms(acctT3, "eu-west-1")
			newKey := func() string {
				return aws.ToString(must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(x.ctx, &kms.CreateKeyInput{})).KeyMetadata.Arn)
			}
			enabled, disabled, pending := newKey(), newKey(), newKey()
			must[*kms.DisableKeyOutput](t, "DisableKey")(c.DisableKey(x.ctx, &kms.DisableKeyInput{KeyId: aws.String(disabled)}))
			must[*kms.ScheduleKeyDeletionOutput](t, "ScheduleKeyDeletion")(c.ScheduleKeyDeletion(x.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(pending), PendingWindowInDays: aws.Int32(7)}))
			tests := []struct {
				key        string
				state      kmstypes.KeyState
				encryptErr string
			}{
				{enabled, kmstypes.KeyStateEnabled, ""},
				{disabled, kmstypes.KeyStateDisabled, "DisabledException"},
				{pending, kmstypes.KeyStatePendingDeletion, "KMSInvalidStateException"},
			}
			for _, tc := range tests {
				out, err := c.DescribeKey(x.ctx, &kms.DescribeKeyInput{KeyId: aws.String(tc.key)})
				if err != nil {
					t.Fatalf("DescribeKey %s: %v", tc.state, err)
				}
				m := out.KeyMetadata
				if m.KeyState != tc.state || m.Enabled != (tc.state == kmstypes.KeyStateEnabled) || m.KeyManager != kmstypes.KeyManagerTypeCustomer ||
					m.KeySpec != kmstypes.KeySpecSymmetricDefault || m.KeyUsage != kmstypes.KeyUsageTypeEncryptDecrypt || aws.ToString(m.Arn) != tc.key || m.MultiRegion == nil || *m.MultiRegion {
					t.Fatalf("DescribeKey %s: %+v", tc.state, m)
				}
				_, err = c.Encrypt(x.ctx, &kms.EncryptInput{KeyId: aws.String(tc.key), Plaintext: []byte("x")})
				if apiCode(err) != tc.encryptErr {
					t.Fatalf("Encrypt under a %s key: %v, want %q", tc.state, err, tc.encryptErr)
				}
			}
			if _, err := c.DescribeKey(x.ctx, &kms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:eu-west-1:333333333333:key/00000000-0000-4000-a000-000000000000")}); apiCode(err) != "NotFoundException" {
				t.Fatalf("unknown key: %v", err)
			}
			if _, err := x.kms(acctT2, "eu-west-1").DescribeKey(x.ctx, &kms.DescribeKeyInput{KeyId: aws.String(enabled)}); apiCode(err) != "AccessDeniedException" {
				t.Fatalf("another account's key without permission: %v", err)
			}
		}},
		{rule: "3.8", name: "key administration stays in the key's account", run: func(t *testing.T, x *ec2Env) {
			// Even a key policy giving another account kms:* lets it use the
			// key, not administer it (KMS: "Cross-account use: No").
			policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["111111111111","222222222222"]},"Action":"kms:*","Resource":"*"}]}`
			key := aws.ToString(must[*kms.CreateKeyOutput](t, "CreateKey")(x.kms(acctBuild, east).CreateKey(x.ctx, &kms.CreateKeyInput{Policy: aws.String(policy)})).KeyMetadata.Arn)
			t2 := x.kms(acctT2, east)
			calls := []struct {
				name string
				call func() error
				code string
			}{
				{"DescribeKey", func() error {
					_, err := t2.DescribeKey(x.ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
					return err
				}, ""},
				{"Encrypt", func() error {
					_, err := t2.Encrypt(x.ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
					return err
				}, ""},
				{"ListGrants", func() error { _, err := t2.ListGrants(x.ctx, &kms.ListGrantsInput{KeyId: aws.String(key)}); return err }, ""},
				{"GetKeyPolicy", func() error {
					_, err := t2.GetKeyPolicy(x.ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(key)})
					return err
				}, "AccessDeniedException"},
				{"PutKeyPolicy", func() error {
					_, err := t2.PutKeyPolicy(x.ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(policy)})
					return err
				}, "AccessDeniedException"},
				{"DisableKey", func() error { _, err := t2.DisableKey(x.ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); return err }, "AccessDeniedException"},
				{"ScheduleKeyDeletion", func() error {
					_, err := t2.ScheduleKeyDeletion(x.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key)})
					return err
				}, "AccessDeniedException"},
				{"CreateAlias", func() error {
					_, err := t2.CreateAlias(x.ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/theirs"), TargetKeyId: aws.String(key)})
					return err
				}, "AccessDeniedException"},
			}
			for _, cl := range calls {
				if err := cl.call(); apiCode(err) != cl.code {
					t.Errorf("%s by 222222222222 on 111111111111's key: %v, want %q", cl.name, err, cl.code)
				}
			}
			if d := must[*kms.DescribeKeyOutput](t, "DescribeKey")(x.kms(acctBuild, east).DescribeKey(x.ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})); d.KeyMetadata.KeyState != kmstypes.KeyStateEnabled {
				t.Fatalf("key state %s after the refused calls", d.KeyMetadata.KeyState)
			}
		}},
		{rule: "3.9", name: "RetireGrant and RevokeGrant principals", run: func(t *testing.T, x *ec2Env) {
			admin := x.kms(acctBuild, east)
			buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
			grant := func(ops ...kmstypes.GrantOperation) *kms.CreateGrantOutput {
				g := must[*kms.CreateGrantOutput](t, "CreateGrant")(admin.CreateGrant(x.ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
					GranteePrincipal: aws.String("arn:aws:iam::222222222222:user/admin"), RetiringPrincipal: aws.String("arn:aws:iam::333333333333:root"),
					Operations: ops}))
				if aws.ToString(g.GrantId) == "" || aws.ToString(g.GrantToken) == "" {
					t.Fatalf("CreateGrant returned %+v", g)
				}
				return g
			}
			live := func(id *string) bool {
				lg := must[*kms.ListGrantsOutput](t, "ListGrants")(admin.ListGrants(x.ctx, &kms.ListGrantsInput{KeyId: aws.String(buildKey)}))
				for _, g := range lg.Grants {
					if aws.ToString(g.GrantId) == aws.ToString(id) {
						return true
					}
				}
				return false
			}
			t2, t3, t4 := x.kms(acctT2, east), x.kms(acctT3, east), x.kms(acctT4, east)
			steps := []struct {
				name   string
				grant  *kms.CreateGrantOutput
				call   func(g *kms.CreateGrantOutput) error
				code   string
				isLive bool
			}{
				{"RetireGrant by a stranger", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := t4.RetireGrant(x.ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "AccessDeniedException", true},
				{"RetireGrant by the grantee, grant without RetireGrant", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := t2.RetireGrant(x.ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "AccessDeniedException", true},
				{"RetireGrant by the grantee, grant with RetireGrant", grant(kmstypes.GrantOperationDecrypt, kmstypes.GrantOperationRetireGrant), func(g *kms.CreateGrantOutput) error {
					_, err := t2.RetireGrant(x.ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "", false},
				{"RetireGrant by the retiring principal", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := t3.RetireGrant(x.ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "", false},
				{"RetireGrant by the retiring principal with the token", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := t3.RetireGrant(x.ctx, &kms.RetireGrantInput{GrantToken: g.GrantToken})
					return err
				}, "", false},
				{"RevokeGrant by the grantee", grant(kmstypes.GrantOperationDecrypt, kmstypes.GrantOperationRetireGrant), func(g *kms.CreateGrantOutput) error {
					_, err := t2.RevokeGrant(x.ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "AccessDeniedException", true},
				{"RevokeGrant by the key administrator", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := admin.RevokeGrant(x.ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "", false},
			}
			for _, s := range steps {
				err := s.call(s.grant)
				if apiCode(err) != s.code {
					t.Errorf("%s: %v, want %q", s.name, err, s.code)
				}
				if live(s.grant.GrantId) != s.isLive {
					t.Errorf("%s: grant live=%v, want %v", s.name, !s.isLive, s.isLive)
				}
			}
		}},
		{rule: "3.10", name: "RunInstances ClientToken", run: func(t *testing.T, x *ec2Env) {
			c := x.ec2(acctT3, west)
			in := &ec2.RunInstancesInput{ImageId: aws.String(seedImageIn(west)), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
				InstanceType: types.InstanceTypeT3Micro, ClientToken: aws.String("r310-run")}
			first := must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(x.ctx, in))
			again := must[*ec2.RunInstancesOutput](t, "RunInstances again")(c.RunInstances(x.ctx, in))
			if aws.ToString(first.Instances[0].InstanceId) != aws.ToString(again.Instances[0].InstanceId) {
				t.Fatalf("same ClientToken launched %s then %s", aws.ToString(first.Instances[0].InstanceId), aws.ToString(again.Instances[0].InstanceId))
			}
			changed := *in
			changed.InstanceType = types.InstanceTypeT3Small
			if _, err := c.RunInstances(x.ctx, &changed); apiCode(err) != "IdempotentParameterMismatch" {
				t.Fatalf("same ClientToken, other parameters: %v", err)
			}
			out := must[*ec2.DescribeInstancesOutput](t, "DescribeInstances")(c.DescribeInstances(x.ctx, &ec2.DescribeInstancesInput{}))
			n := 0
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
			if n != 1 {
				t.Fatalf("%d instances after three calls with one token", n)
			}
		}},
		{rule: "3.10", name: "ClientToken longer than 64", run: func(t *testing.T, x *ec2Env) {
			_, err := x.ec2(acctT3, east).CopyImage(x.ctx, &ec2.CopyImageInput{SourceImageId: aws.String(seedAMI), SourceRegion: aws.String(east),
				Name: aws.String("r310-long"), ClientToken: aws.String(strings.Repeat("t", 65))})
			if err == nil {
				t.Fatal("CopyImage accepted a 65-character ClientToken (the limit is 64 ASCII characters)")
			}
		}},
		{rule: "3.11", name: "AMI name boundaries and scope", run: func(t *testing.T, x *ec2Env) {
			base := "a()[] ./-'@_Z9"
			long := base + strings.Repeat("x", 128-len(base))
			tests := []struct {
				account, region, name, code string
			}{
				{acctT4, east, "abc", ""},
				{acctT4, east, long, ""},
				{acctT4, east, long + "y", "InvalidAMIName.Malformed"},
				{acctT4, east, "ab", "InvalidAMIName.Malformed"},
				{acctT4, east, "name:colon", "InvalidAMIName.Malformed"},
				{acctT4, east, "abc", "InvalidAMIName.Duplicate"},
				{acctT4, west, "abc", ""}, // another region
				{acctT3, east, "abc", ""}, // another account
			}
			first := map[string]string{}
			for _, tc := range tests {
				out, err := x.ec2(tc.account, tc.region).CopyImage(x.ctx, &ec2.CopyImageInput{SourceImageId: aws.String(seedAMI), SourceRegion: aws.String(east), Name: aws.String(tc.name)})
				if apiCode(err) != tc.code {
					t.Errorf("%s/%s name %q (%d chars): %v, want %q", tc.account, tc.region, tc.name, len(tc.name), err, tc.code)
					continue
				}
				if err == nil {
					first[tc.account+tc.region+tc.name] = aws.ToString(out.ImageId)
				}
				if tc.code == "InvalidAMIName.Duplicate" && apiMessage(err) != "AMI name "+tc.name+" is already in use by AMI "+first[tc.account+tc.region+tc.name] {
					t.Errorf("duplicate message %q", apiMessage(err))
				}
			}
		}},
		{rule: "3.13", name: "quotas per account-region", opts: Options{TimeScale: 1, Limits: Limits{ConcurrentImageCopies: 1, ConcurrentSnapshotCopies: 1}}, run: func(t *testing.T, x *ec2Env) {
			copyImage := func(account, region, name string) error {
				_, err := x.ec2(account, region).CopyImage(x.ctx, &ec2.CopyImageInput{SourceImageId: aws.String(seedAMI), SourceRegion: aws.String(east), Name: aws.String(name)})
				return err
			}
			// Each account's own snapshot to copy, made before the quotas matter.
			srcSnap := map[string]string{}
			for _, account := range []string{acctBuild, acctT3} {
				out := must[*ec2.CopyImageOutput](t, "CopyImage")(x.ec2(account, east).CopyImage(x.ctx, &ec2.CopyImageInput{SourceImageId: aws.String(seedAMI), SourceRegion: aws.String(east), Name: aws.String("q-src")}))
				x.srv.Emulator().Advance(2 * time.Hour)
				srcSnap[account] = aws.ToString(x.image(x.ec2(account, east), aws.ToString(out.ImageId)).BlockDeviceMappings[0].Ebs.SnapshotId)
			}
			copySnap := func(account, region string) error {
				_, err := x.ec2(account, region).CopySnapshot(x.ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(srcSnap[account]), SourceRegion: aws.String(east)})
				return err
			}
			tests := []struct {
				name string
				call func() error
				code string
			}{
				{"first image copy in 111/us-east-1", func() error { return copyImage(acctBuild, east, "q-1") }, ""},
				{"second image copy in 111/us-east-1", func() error { return copyImage(acctBuild, east, "q-2") }, "ResourceLimitExceeded"},
				{"image copy in 111/us-west-2", func() error { return copyImage(acctBuild, west, "q-3") }, ""},
				{"image copy in 222/us-east-1", func() error { return copyImage(acctT2, east, "q-4") }, ""},
				{"first snapshot copy in 111/us-east-1", func() error { return copySnap(acctBuild, east) }, ""},
				{"second snapshot copy in 111/us-east-1", func() error { return copySnap(acctBuild, east) }, "ResourceLimitExceeded"},
				{"snapshot copy in 333/us-east-1", func() error { return copySnap(acctT3, east) }, ""},
			}
			for _, tc := range tests {
				if err := tc.call(); apiCode(err) != tc.code {
					t.Errorf("%s: %v, want %q", tc.name, err, tc.code)
				}
			}
		}},
		{rule: "3.15", name: "AssumeRole denial text", run: func(t *testing.T, x *ec2Env) {
			role := "arn:aws:iam::444444444444:role/amicrypt-copy"
			_, err := sts.NewFromConfig(x.srv.Config(x.ctx, acctBuild, east)).AssumeRole(x.ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("no-external-id")})
			want := "User: arn:aws:iam::111111111111:user/packer is not authorized to perform: sts:AssumeRole on resource: " + role
			if apiCode(err) != "AccessDenied" || apiMessage(err) != want {
				t.Fatalf("got %v\nwant AccessDenied %q", err, want)
			}
		}},
	}
}

// TestRulesMatrix runs the matrix; cases without options of their own
// share one emulator (each uses its own names and resources).
func TestRulesMatrix(t *testing.T) {
	shared := newEC2Env(t, Options{})
	for _, tc := range rulesMatrix() {
		t.Run(tc.rule+" "+tc.name, func(t *testing.T) {
			x := &ec2Env{t: t, ctx: context.Background(), srv: shared.srv}
			if tc.own || tc.world != nil || !reflect.DeepEqual(tc.opts, Options{}) {
				opts := tc.opts
				if tc.world != nil {
					opts.World = rulesWorld(t, tc.world)
				}
				x = newEC2Env(t, opts)
			}
			tc.run(t, x)
		})
	}
}

// TestRulesCrossAccountSequence drives section 4's cross-account copy with
// every step the sequence names, into a target whose role needs an
// ExternalId and in another region than the source.
func TestRulesCrossAccountSequence(t *testing.T) {
	x := newEC2Env(t, Options{})
	ctx := x.ctx
	s := x.ec2(acctBuild, east)
	sKMS := x.kms(acctBuild, east)
	buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
	amiID, snapID := x.ownEncryptedAMI(acctBuild, east, buildKey, "seq2-golden")
	must[*ec2.CreateTagsOutput](t, "CreateTags")(s.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{amiID},
		Tags: []types.Tag{{Key: aws.String("Team"), Value: aws.String("pci")}}}))
	mark := x.srv.Emulator().CheckMark()

	// Step 1 in S: the image, its snapshots and their keys.
	img := x.image(s, amiID)
	snaps := must[*ec2.DescribeSnapshotsOutput](t, "DescribeSnapshots")(s.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}}))
	if len(snaps.Snapshots) != 1 || aws.ToString(snaps.Snapshots[0].KmsKeyId) != buildKey || aws.ToString(img.BlockDeviceMappings[0].Ebs.KmsKeyId) != buildKey {
		t.Fatalf("source snapshot %+v, image %+v", snaps.Snapshots, img.BlockDeviceMappings)
	}
	src := must[*kms.DescribeKeyOutput](t, "DescribeKey source")(sKMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(buildKey)}))
	if src.KeyMetadata.KeyManager != kmstypes.KeyManagerTypeCustomer || src.KeyMetadata.KeyState != kmstypes.KeyStateEnabled {
		t.Fatalf("source key %+v", src.KeyMetadata)
	}

	// Step 2 in S: launch and createVolume permissions, a grant for T's role.
	const target, region = acctT4, west
	role := "arn:aws:iam::" + target + ":role/amicrypt-copy"
	x.share(acctBuild, east, amiID, snapID, target)
	grant := must[*kms.CreateGrantOutput](t, "CreateGrant")(sKMS.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
		GranteePrincipal: aws.String(role), RetiringPrincipal: aws.String("arn:aws:iam::" + acctBuild + ":root"), Name: aws.String("amicrypt-seq2"),
		Operations: sourceKeyGrantOps}))

	// Step 3 in T, as the assumed role (ExternalId), in R.
	roleCfg := x.srv.RoleConfig(ctx, acctBuild, role, "amicrypt-demo", region)
	tKMS := kms.NewFromConfig(roleCfg)
	tEC2 := ec2.NewFromConfig(roleCfg, func(o *ec2.Options) { o.RetryMaxAttempts = sdkAttempts })
	tk := must[*kms.DescribeKeyOutput](t, "DescribeKey target")(tKMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-target")}))
	targetKey := aws.ToString(tk.KeyMetadata.Arn)
	if tk.KeyMetadata.KeyState != kmstypes.KeyStateEnabled || tk.KeyMetadata.KeyManager != kmstypes.KeyManagerTypeCustomer ||
		tk.KeyMetadata.KeySpec != kmstypes.KeySpecSymmetricDefault || !strings.HasPrefix(targetKey, "arn:aws:kms:"+region+":"+target+":key/") {
		t.Fatalf("target key %+v", tk.KeyMetadata)
	}
	// The shared image shows in T without S's tags.
	roleEast := x.srv.RoleConfig(ctx, acctBuild, role, "amicrypt-demo", east)
	if shared := x.image(ec2.NewFromConfig(roleEast), amiID); len(shared.Tags) != 0 {
		t.Fatalf("T sees S's tags: %+v", shared.Tags)
	}

	// Step 4 in T, R.
	tags := []types.Tag{{Key: aws.String("Team"), Value: aws.String("pci")}, {Key: aws.String("amicrypt:source"), Value: aws.String(east + ":" + amiID)}}
	out := must[*ec2.CopyImageOutput](t, "CopyImage")(tEC2.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(east),
		Name: aws.String("seq2-golden"), Encrypted: aws.Bool(true), KmsKeyId: aws.String(targetKey), ClientToken: aws.String("seq2-" + target + "-" + region),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: tags}, {ResourceType: types.ResourceTypeSnapshot, Tags: tags}}}))

	// Step 5 in T, R.
	cp := x.waitImage(tEC2, aws.ToString(out.ImageId))
	if cp.State != types.ImageStateAvailable || aws.ToString(cp.OwnerId) != target || len(cp.Tags) != 2 ||
		!aws.ToBool(cp.BlockDeviceMappings[0].Ebs.Encrypted) || aws.ToString(cp.BlockDeviceMappings[0].Ebs.KmsKeyId) != targetKey {
		t.Fatalf("copy: %s %+v", cp.State, cp)
	}
	cpSnap := x.snapshot(tEC2, aws.ToString(cp.BlockDeviceMappings[0].Ebs.SnapshotId))
	if aws.ToString(cpSnap.KmsKeyId) != targetKey || aws.ToString(cpSnap.OwnerId) != target || len(cpSnap.Tags) != 2 {
		t.Fatalf("copy's snapshot: %+v", cpSnap)
	}

	// Step 6 in S: remove the permissions, retire the grant.
	must[*ec2.ModifyImageAttributeOutput](t, "unshare")(s.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
		LaunchPermission: &types.LaunchPermissionModifications{Remove: []types.LaunchPermission{{UserId: aws.String(target)}}}}))
	must[*ec2.ModifySnapshotAttributeOutput](t, "unshare snapshot")(s.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snapID),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeRemove, UserIds: []string{target}}))
	must[*kms.RetireGrantOutput](t, "RetireGrant")(sKMS.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: grant.GrantId}))
	if _, err := kms.NewFromConfig(roleEast).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(buildKey)}); apiCode(err) != "AccessDeniedException" {
		t.Fatalf("T's role still reaches the source key after the grant was retired: %v", err)
	}
	if _, err := tEC2.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(east), Name: aws.String("seq2-again")}); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("copy after unsharing: %v", err)
	}
	if r := x.srv.Emulator().Check(CheckOptions{SinceSeq: mark}); !r.Pass {
		t.Fatalf("checker after the sequence: %s", r)
	}
}
