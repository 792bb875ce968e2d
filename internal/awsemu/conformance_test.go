package awsemu_test

// conformance_test.go is the index of the conformance matrix of
// docs/aws-behaviour.md: one entry per fact the emulator implements, with
// the tests that pin it down in the package of the service it concerns
// ("ec2.TestX", "kms.TestRulesMatrix/3.8_NAME"). The matrix cases
// themselves live beside each service (ec2/, kms/, sts/ conformance_test.go
// and, for the wire protocols, wire_test.go here).

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// conformanceIndex maps each fact to the tests that cover it.
var conformanceIndex = []struct {
	Rule, Fact string
	Tests      []string
}{
	{Rule: "1", Fact: "EC2 Query/XML envelope, <item> lists, error body", Tests: []string{"ec2.TestEC2WireDetails", "awsemu.TestRulesMatrix/1_EC2_error_body"}},
	{Rule: "1", Fact: "KMS JSON 1.1, HTTP 400 {__type, message}", Tests: []string{"awsemu.TestUnsignedRequest", "awsemu.TestRulesMatrix/1_KMS_error_body"}},
	{Rule: "1", Fact: "STS Query/XML, <ErrorResponse><Error><Type>Sender", Tests: []string{"awsemu.TestRulesMatrix/1_STS_error_body"}},
	{Rule: "1", Fact: "SigV4: wrong secret, unknown key, expired session, per-service codes", Tests: []string{"awsemu.TestAuthErrors", "awsemu.TestUnsignedRequest", "core.TestVerifySigV4", "core.TestParseSigV4Errors"}},
	{Rule: "1", Fact: "throttling 503 RequestLimitExceeded 'Request limit exceeded.'; 500 InternalError; SDKs retry both", Tests: []string{"awsemu.TestFaultInjection", "awsemu.TestRequestRateLimits", "awsemu.TestRulesMatrix/1_SDK_retries_throttling_and_InternalError"}},
	{Rule: "1", Fact: "DryRun: 412 DryRunOperation / UnauthorizedOperation", Tests: []string{"ec2.TestEC2WireDetails", "ec2.TestEC2DryRunDenied", "awsemu.TestRulesMatrix/1_DryRun_statuses"}},
	{Rule: "2", Fact: "instance pending→running, stopping→stopped, shutting-down→terminated", Tests: []string{"ec2.TestEC2InstanceLifecycle", "ec2.TestEC2BuildSequence"}},
	{Rule: "2", Fact: "launch failure: terminated with Client.InternalError: Client error on launch", Tests: []string{"ec2.TestEC2AsyncKeyFailures/launch_without_key_permission"}},
	{Rule: "2", Fact: "snapshot pending+Progress→completed|error; KmsKeyId always a key ARN", Tests: []string{"ec2.TestEC2SnapshotProgressAndImageState", "ec2.TestEC2EncryptionDefaults", "ec2.TestEC2AsyncKeyFailures"}},
	{Rule: "2", Fact: "image pending→available only when every snapshot completes, or failed with StateReason", Tests: []string{"ec2.TestEC2SnapshotProgressAndImageState", "ec2.TestEC2AsyncKeyFailures"}},
	{Rule: "2", Fact: "DescribeImages has no KmsKeyId in its EBS mappings; DescribeSnapshots returns the key ARN", Tests: []string{"ec2.TestRulesMatrix/2_DescribeImages_has_no_KmsKeyId,_DescribeSnapshots_has_the_key_ARN"}},
	{Rule: "2", Fact: "CreateVolume answers creating; the volume becomes available later", Tests: []string{"ec2.TestRulesMatrix/2_CreateVolume_answers_creating,_then_available"}},
	{Rule: "2", Fact: "public AMIs: gp3 root with Iops 3000 and Throughput 125", Tests: []string{"ec2.TestRulesMatrix/2_public_AMIs_show_gp3_baseline_Iops_and_Throughput"}},
	{Rule: "5.1", Fact: "instance profiles: unknown IamInstanceProfile is InvalidParameterValue; the instance carries its profile", Tests: []string{"ec2.TestRulesMatrix/5_RunInstances_with_an_instance_profile"}},
	{Rule: "1", Fact: "errors before dispatch carry a RequestID; KMS UnknownOperationException has a message", Tests: []string{"awsemu.TestRulesMatrix/1_errors_before_dispatch_carry_a_request_ID"}},
	{Rule: "1", Fact: "a malformed Authorization header is IncompleteSignature (KMS IncompleteSignatureException)", Tests: []string{"awsemu.TestRulesMatrix/1_malformed_Authorization_header_is_IncompleteSignature", "core.TestParseSigV4Errors"}},
	{Rule: "5.2", Fact: "IMDSv2 per instance: token with TTL 1-21600 echoed in its header, 401 without a token when required, 403 through a proxy, identity document, role credentials of the instance profile (a session named after the instance), only while the instance runs", Tests: []string{"ec2.TestIMDS"}},
	{Rule: "5.3", Fact: "data keys bound to an instance: kms:EncryptionContext conditions with ${ec2:SourceInstanceARN}; a context mismatch is InvalidCiphertextException", Tests: []string{"awsemu.TestInstanceBoundDataKeys"}},
	{Rule: "5.4", Fact: "CloudTrail records each KMS call: userIdentity (the instance's session), requestParameters with the encryption context, resources, errorCode", Tests: []string{"awsemu.TestInstanceBoundDataKeys"}},
	{Rule: "6.1", Fact: "identity policies: Allow/Deny, NotAction, resource ARNs, condition operators and keys (kms:EncryptionContext:*, kms:EncryptionContextKeys, kms:GrantIsForAWSResource, kms:ViaService); a key policy naming the account delegates to its IAM", Tests: []string{"core.TestPolicyEvaluation", "core.TestParseIdentityPolicyErrors", "kms.TestKMSIdentityPolicies"}},
	{Rule: "2", Fact: "copy times grow with size, cross-region factor, first copy full", Tests: []string{"ec2.TestEC2CopyTimes", "core.TestLatencyModel"}},
	{Rule: "3.1", Fact: "no unencrypted copy of encrypted data (CopySnapshot and CopyImage), exact text", Tests: []string{"ec2.TestEC2ErrorRules/rule_1:_CopySnapshot_unencrypted_copy_of_encrypted", "ec2.TestEC2ErrorRules/rule_1:_CopyImage_unencrypted_copy_of_encrypted"}},
	{Rule: "3.1", Fact: "without Encrypted, a copy of encrypted data stays encrypted", Tests: []string{"ec2.TestRulesMatrix/3.1_copy_without_Encrypted_stays_encrypted"}},
	{Rule: "3.2", Fact: "KmsKeyId needs Encrypted=true (emulator convention text)", Tests: []string{"ec2.TestEC2ErrorRules/rule_2:_CopySnapshot_KmsKeyId_without_Encrypted", "ec2.TestEC2ErrorRules/rule_2:_CopyImage_KmsKeyId_with_Encrypted=false", "ec2.TestRulesMatrix/3.2_CopyImage_KmsKeyId_without_Encrypted"}},
	{Rule: "3.2", Fact: "without KmsKeyId an encrypted copy uses the caller's default EBS key", Tests: []string{"ec2.TestEC2EncryptionDefaults", "ec2.TestRulesMatrix/3.2_default_key_fallback_for_CopyImage"}},
	{Rule: "3.3", Fact: "AWS-managed key: AMI share InvalidParameter, snapshot share OperationNotPermitted (both texts)", Tests: []string{"ec2.TestEC2ErrorRules/rule_3:_share_an_AMI_under_the_AWS_managed_key", "ec2.TestEC2ErrorRules/rule_3:_share_a_snapshot_under_the_AWS_managed_key", "ec2.TestRulesMatrix/3.3_managed_key_share_through_the_other_parameter_forms"}},
	{Rule: "3.3", Fact: "encrypted snapshots and AMIs never public", Tests: []string{"ec2.TestEC2ErrorRules/rule_3:_an_encrypted_AMI_can't_be_public", "ec2.TestEC2ErrorRules/rule_3:_an_encrypted_snapshot_can't_be_public", "ec2.TestRulesMatrix/3.3_unencrypted_AMI_may_be_public", "ec2.TestRulesMatrix/3.3_encrypted_never_public_through_the_other_parameter_forms"}},
	{Rule: "3.4", Fact: "without the share: InvalidAMIID.NotFound / InvalidSnapshot.NotFound", Tests: []string{"ec2.TestEC2ErrorRules/rule_4:_unshared_AMI_is_invisible", "ec2.TestEC2ErrorRules/rule_4:_unshared_snapshot_is_invisible", "ec2.TestEC2CrossAccountCopySequence", "ec2.TestRulesMatrix/3.4_unshared_snapshot_can't_be_copied_or_restored"}},
	{Rule: "3.4", Fact: "without key permission (or with a disabled/unknown destination key) the copy is accepted and fails later", Tests: []string{"ec2.TestEC2AsyncKeyFailures"}},
	{Rule: "3.4", Fact: "key permission through a key-policy statement instead of a grant", Tests: []string{"ec2.TestRulesMatrix/3.4_key_policy_statement_is_enough"}},
	{Rule: "3.4", Fact: "the using account's own IAM must allow the key operations", Tests: []string{"ec2.TestRulesMatrix/3.4_using_account's_IAM_deny"}},
	{Rule: "3.4", Fact: "a grant still propagating does not count yet", Tests: []string{"kms.TestKMSGrantsCrossAccountAndPropagation", "ec2.TestRulesMatrix/3.4_grant_not_yet_effective"}},
	{Rule: "3.4", Fact: "all three permissions needed: AMI shared but snapshot not", Tests: []string{"ec2.TestRulesMatrix/3.4_snapshot_not_shared"}},
	{Rule: "3.4", Fact: "each of the five source-key operations is needed", Tests: []string{"ec2.TestRulesMatrix/3.4_every_source-key_operation_is_needed"}},
	{Rule: "3.4/3.8", Fact: "a key is usable only in its region: a destination key of another region fails the copy", Tests: []string{"ec2.TestRulesMatrix/3.4_destination_key_of_another_region"}},
	{Rule: "3.5", Fact: "launch with an unusable (disabled) volume key: Client error on launch", Tests: []string{"ec2.TestRulesMatrix/3.5_launch_with_an_unusable_volume_key"}},
	{Rule: "3.5", Fact: "launch without key permission: Client.InternalError: Client error on launch", Tests: []string{"ec2.TestEC2AsyncKeyFailures/launch_without_key_permission", "ec2.TestEC2AsyncKeyFailures/launch_with_a_grant"}},
	{Rule: "3.5", Fact: "Auto Scaling service-linked role must be allowed on the key (policy or grant)", Tests: []string{"ec2.TestEC2AutoScalingLaunchKeyAccess", "ec2.TestRulesMatrix/3.5_Auto_Scaling_service-linked_role"}},
	{Rule: "3.6", Fact: "tags per account; CopyImageTags copies only the caller's; TagSpecifications", Tests: []string{"ec2.TestEC2TagsPerAccount", "ec2.TestEC2CrossAccountCopySequence"}},
	{Rule: "3.7", Fact: "alias/aws/ebs everywhere, KeyManager AWS, only EC2 in its account; CreateGrant/PutKeyPolicy/ScheduleKeyDeletion AccessDenied", Tests: []string{"kms.TestKMSAWSManagedKeyRules", "kms.TestKMSDescribeKeyResolution"}},
	{Rule: "3.8", Fact: "key ID, key ARN, alias name, alias ARN; alias only in own account; region-bound; mrk replicas", Tests: []string{"kms.TestKMSDescribeKeyResolution", "kms.TestKMSMultiRegionReplica", "kms.TestRulesMatrix/3.8_identifier_forms_across_accounts_and_regions"}},
	{Rule: "3.8", Fact: "a key is administered only in its own account (GetKeyPolicy, PutKeyPolicy, Enable/DisableKey, ScheduleKeyDeletion, CreateAlias)", Tests: []string{"kms.TestRulesMatrix/3.8_key_administration_stays_in_the_key's_account"}},
	{Rule: "3.8", Fact: "DescribeKey fields and states; DisabledException, KMSInvalidStateException, NotFoundException, AccessDeniedException", Tests: []string{"kms.TestKMSCryptoAndKeyLifecycle", "kms.TestRulesMatrix/3.8_DescribeKey_states_and_errors"}},
	{Rule: "3.9", Fact: "CreateGrant (DryRun, GrantId, GrantToken), propagation, ListGrants, RetireGrant, RevokeGrant; a grantee grants onwards only its own operations", Tests: []string{"ec2.TestRulesMatrix/3.5_Auto_Scaling_service-linked_role", "kms.TestKMSGrantsCrossAccountAndPropagation", "kms.TestKMSSlowGrantFault", "kms.TestKMSRetireByTokenCancelDeletionAndRegrant", "kms.TestRulesMatrix/3.9_RetireGrant_and_RevokeGrant_principals"}},
	{Rule: "3.10", Fact: "ClientToken idempotency and IdempotentParameterMismatch", Tests: []string{"ec2.TestEC2CrossAccountCopySequence", "ec2.TestRulesMatrix/3.10_RunInstances_ClientToken", "ec2.TestRulesMatrix/3.10_ClientToken_longer_than_64"}},
	{Rule: "3.11", Fact: "AMI names unique per account and region; 3–128 of the allowed characters", Tests: []string{"ec2.TestEC2ErrorRules/rule_11:_duplicate_AMI_name", "ec2.TestEC2ErrorRules/rule_11:_AMI_name_too_short", "ec2.TestRulesMatrix/3.11_AMI_name_boundaries_and_scope"}},
	{Rule: "3.12", Fact: "DeleteSnapshot InvalidSnapshot.InUse; DeregisterImage keeps snapshots unless DeleteAssociatedSnapshots", Tests: []string{"ec2.TestEC2ErrorRules/rule_12:_snapshot_in_use", "ec2.TestEC2ImageAttributesAndDeregistration"}},
	{Rule: "3.13", Fact: "concurrent copy quotas: ResourceLimitExceeded, per destination account-region", Tests: []string{"ec2.TestEC2Quotas", "ec2.TestRulesMatrix/3.13_quotas_per_account-region"}},
	{Rule: "3.13", Fact: "request token buckets per account-region, Describe* separate from mutating", Tests: []string{"awsemu.TestRequestRateLimits", "core.TestAWSRequestRates"}},
	{Rule: "3.13", Fact: "request rates per emulated second on request (Limits.EmulatedTime): rate / time scale per wall second", Tests: []string{"awsemu.TestRequestRateLimitsOnEmulatedTime", "core.TestRequestRatesOnEmulatedTime"}},
	{Rule: "3.14", Fact: "eventual consistency: *.NotFound right after create in Describe* and CreateTags", Tests: []string{"ec2.TestEC2Faults"}},
	{Rule: "3.15", Fact: "STS AssumeRole, ExternalId, AccessDenied text, GetCallerIdentity", Tests: []string{"sts.TestAssumeRole", "sts.TestAssumeRoleChainingAndIAMDeny", "sts.TestGetCallerIdentity", "sts.TestRulesMatrix/3.15_AssumeRole_denial_text"}},
	{Rule: "8.1", Fact: "IAM GetInstanceProfile at the one endpoint, signed for any known region: the profile, its role and URL-encoded trust policy; NoSuchEntity 404 'Instance Profile NAME cannot be found.' in the caller's account; ValidationError", Tests: []string{"iam.TestRulesMatrix/8.1_GetInstanceProfile_of_the_world's_profile", "iam.TestRulesMatrix/8.1_GetInstanceProfile_NoSuchEntity", "iam.TestRulesMatrix/8.1_GetInstanceProfile_validation", "awsemu.TestAWSCLIIAM"}},
	{Rule: "8.2", Fact: "IAM GetRole (MaxSessionDuration, trust policy with ExternalId) and ListInstanceProfilesForRole (MaxItems/Marker pages, empty list, NoSuchEntity 'The role with name NAME cannot be found.')", Tests: []string{"iam.TestRulesMatrix/8.2_GetRole_and_ListInstanceProfilesForRole", "awsemu.TestAWSCLIIAM"}},
	{Rule: "8.3", Fact: "IAM calls follow the caller's identity policies (resource ARNs, explicit deny): AccessDenied 403 with AWS's text; Query/XML envelope, ResponseMetadata, ErrorResponse of IAM's namespace", Tests: []string{"iam.TestRulesMatrix/8.3_IAM_calls_follow_the_caller's_identity_policies", "iam.TestRulesMatrix/8.3_IAM_wire_format"}},
	{Rule: "8.4", Fact: "EC2 UnauthorizedOperation 403 from identity policies: the caller, action and resource named, explicit or implicit deny, an encoded message; Describe*/Get* only 'You are not authorized to perform this operation.'", Tests: []string{"ec2.TestRulesMatrix/8.4_UnauthorizedOperation_texts_and_encoded_messages"}},
	{Rule: "8.5", Fact: "STS DecodeAuthorizationMessage: the decision, matched statements and context for the account's caller with the permission; AccessDenied without it; InvalidAuthorizationMessageException for another account's, altered or bogus messages; decodes after a restart", Tests: []string{"sts.TestRulesMatrix/8.5_DecodeAuthorizationMessage_of_an_EC2_denial", "sts.TestRulesMatrix/8.5_encoded_messages_decode_after_a_restart"}},
	{Rule: "8.6", Fact: "ModifyImageAttribute refuses product codes (ProductCode.N not supported; no Marketplace seller)", Tests: []string{"ec2.TestRulesMatrix/8.6_ModifyImageAttribute_refuses_product_codes"}},
	{Rule: "8.7", Fact: "image platform: Platform windows or absent, PlatformDetails and UsageOperation (Linux/UNIX RunInstances, Windows RunInstances:0002); kept by CreateImage, CopyImage, RegisterImage from the root snapshot", Tests: []string{"ec2.TestRulesMatrix/8.7_image_platform_and_billing_fields", "core.TestWorldValidation", "ec2.TestEC2GetPasswordData"}},
	{Rule: "9.1", Fact: "GetPasswordData: empty PasswordData until the password is ready, then base64 RSA PKCS #1 v1.5 under the key pair's public key; none for Linux", Tests: []string{"ec2.TestEC2GetPasswordData"}},
	{Rule: "9.2", Fact: "key pairs: CreateKeyPair rsa (PEM PKCS #1 material) or ed25519, DescribeKeyPairs keyType and publicKey, ImportKeyPair; ED25519 refused for Windows images", Tests: []string{"ec2.TestEC2KeyPairTypes", "ec2.TestEC2GetPasswordData", "ec2.TestEC2BuildSequence"}},
	{Rule: "9.3", Fact: "tag keys may not begin with aws: (InvalidParameterValue)", Tests: []string{"ec2.TestEC2ErrorRules/reserved_tag_key"}},
	{Rule: "9.4", Fact: "MetadataOptions at launch (HttpEndpoint, HttpTokens, hop limit 1-64, InstanceMetadataTags) reported by DescribeInstances, bad values refused; ImdsSupport v2.0 images launch with HttpTokens required", Tests: []string{"ec2.TestEC2RunInstancesOptionsAreReported", "ec2.TestEC2RunInstancesRefusesBadOptions/hop_limit", "ec2.TestEC2BuildSequence", "ec2.TestIMDS"}},
	{Rule: "9.5", Fact: "launch templates: CreateLaunchTemplate with data and tags, used by name and version, DeleteLaunchTemplate, a second delete InvalidLaunchTemplateName.NotFoundException", Tests: []string{"ec2.TestEC2InstantFleetLaunchesSpot", "ec2.TestEC2CheckerSpotLeftovers"}},
	{Rule: "9.6", Fact: "CreateFleet type instant: synchronous, Instances and Errors in the response, a failed launch in Errors rather than a failed call", Tests: []string{"ec2.TestEC2InstantFleetLaunchesSpot", "ec2.TestEC2InstantFleetReportsLaunchErrors"}},
	{Rule: "9.7", Fact: "spot instances: lifecycle spot with a one-time request; StopInstances UnsupportedOperation; request active, closed after termination, cancelled; not into a capacity reservation", Tests: []string{"ec2.TestEC2InstantFleetLaunchesSpot", "ec2.TestEC2CheckerSpotLeftovers", "ec2.TestEC2RunInstancesRefusesBadOptions/spot_into_a_reservation"}},
	{Rule: "9.8", Fact: "a region the account has not enabled: EC2 AuthFailure, KMS UnrecognizedClientException; DescribeRegions AllRegions shows not-opted-in", Tests: []string{"awsemu.TestAuthErrors/region_not_enabled", "ec2.TestEC2NetworkAndAccount"}},
	{Rule: "9.2", Fact: "CreateKeyPair KeyFormat pem or ppk (PuTTY-User-Key-File-2 of the same key), others InvalidParameterValue", Tests: []string{"ec2.TestRulesMatrix/9.2_CreateKeyPair_KeyFormat_pem_or_ppk"}},
	{Rule: "9.2", Fact: "ImportKeyPair takes RSA (MD5 fingerprint) and ED25519 (base64 SHA-256) keys only; ECDSA is InvalidKey.Format", Tests: []string{"ec2.TestRulesMatrix/9.2_ImportKeyPair_takes_RSA_and_ED25519_keys_with_their_fingerprints"}},
	{Rule: "9.3", Fact: "tag keys up to 128 and values up to 256 Unicode characters, not bytes", Tests: []string{"ec2.TestRulesMatrix/9.3_tag_lengths_count_Unicode_characters"}},
	{Rule: "9.4", Fact: "ImdsSupport is v2.0 only (RegisterImage, ModifyImageAttribute) and can't be undone", Tests: []string{"ec2.TestRulesMatrix/9.4_ImdsSupport_is_v2.0_only_and_can't_be_undone"}},
	{Rule: "9.4", Fact: "without MetadataOptions: HttpTokens optional and hop limit 1, or required and 2 for an ImdsSupport v2.0 AMI; explicit options win", Tests: []string{"ec2.TestRulesMatrix/9.4_metadata_defaults_follow_the_AMI's_ImdsSupport"}},
	{Rule: "9.4", Fact: "the metadata service answers nothing with HttpEndpoint disabled and serves tags/instance only with InstanceMetadataTags enabled", Tests: []string{"ec2.TestRulesMatrix/9.4_the_metadata_service_honours_HttpEndpoint_and_InstanceMetadataTags"}},
	{Rule: "9.5", Fact: "CreateFleet's launch template Version is required (MissingParameter), an unknown version InvalidLaunchTemplateVersion.NotFound", Tests: []string{"ec2.TestRulesMatrix/9.6_CreateFleet_needs_a_launch_template_version_and_serves_instant_fleets"}},
	{Rule: "9.6", Fact: "CreateFleet: instant only (maintain, the default, and request refused as an emulator limit, with the fix); unknown Type InvalidParameterValue", Tests: []string{"ec2.TestRulesMatrix/9.6_CreateFleet_needs_a_launch_template_version_and_serves_instant_fleets"}},
	{Rule: "9.6", Fact: "DeleteFleets of an instant fleet without terminating its instances: unsuccessfulFleetDeletionSet fleetNotInDeletableState, fleet and instances left; with TerminateInstances the instances terminate", Tests: []string{"ec2.TestRulesMatrix/9.6_DeleteFleets_of_an_instant_fleet_must_terminate_its_instances"}},
	{Rule: "9.7", Fact: "spot options: persistent only with stop or hibernate, MaxPrice above USD 0.001; a persistent request's instance can be stopped (request disabled), a one-time one can't", Tests: []string{"ec2.TestRulesMatrix/9.7_spot_options:_persistent_requests_with_stop_or_hibernate,_a_MaxPrice_above_USD_0.001"}},
	{Rule: "9.8", Fact: "DescribeRegions: opt-in-not-required for regions enabled by default, opted-in for an enabled opt-in region, not-opted-in for a disabled one", Tests: []string{"ec2.TestRulesMatrix/9.8_DescribeRegions_optInStatus_of_default,_enabled_opt-in_and_disabled_regions"}},
	{Rule: "checker", Fact: "leftover launch templates, EC2 Fleets with live instances and open spot requests of a principal are leaks", Tests: []string{"ec2.TestEC2CheckerSpotLeftovers"}},
	{Rule: "4", Fact: "build sequence end to end", Tests: []string{"ec2.TestEC2BuildSequence"}},
	{Rule: "4", Fact: "cross-account re-encrypted copy end to end", Tests: []string{"ec2.TestEC2CrossAccountCopySequence", "ec2.TestEC2CrossAccountScenarios", "ec2.TestRulesCrossAccountSequence"}},
}

// packageDirs are where each package's tests live, from this directory.
var packageDirs = map[string]string{"awsemu": ".", "core": "core", "ec2": "ec2", "kms": "kms", "sts": "sts", "iam": "iam"}

// TestConformanceIndexNamesRealTests fails when the index names a test
// function or a matrix case that does not exist, so it can't rot silently.
func TestConformanceIndexNamesRealTests(t *testing.T) {
	funcs := map[string]bool{} // "pkg.TestName"
	cases := map[string]bool{} // "pkg.RULE_NAME"
	caseRe := regexp.MustCompile(`\{Rule: "([^"]+)", Name: "([^"]+)"`)
	fset := token.NewFileSet()
	for pkg, dir := range packageDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
		if err != nil {
			t.Fatal(err)
		}
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
					funcs[pkg+"."+name] = true
				}
			}
			for _, m := range caseRe.FindAllStringSubmatch(string(src), -1) {
				cases[pkg+"."+strings.ReplaceAll(m[1]+" "+m[2], " ", "_")] = true
			}
		}
	}
	for _, r := range conformanceIndex {
		if len(r.Tests) == 0 {
			t.Errorf("rule %s %q: no test covers it", r.Rule, r.Fact)
		}
		for _, name := range r.Tests {
			pkg, test, _ := strings.Cut(name, ".")
			top, sub, _ := strings.Cut(test, "/")
			if !funcs[pkg+"."+top] {
				t.Errorf("rule %s %q: test %s does not exist in package %s", r.Rule, r.Fact, top, pkg)
			}
			if top == "TestRulesMatrix" && !cases[pkg+"."+sub] {
				t.Errorf("rule %s %q: %s.TestRulesMatrix has no case %s", r.Rule, r.Fact, pkg, sub)
			}
		}
	}
}
