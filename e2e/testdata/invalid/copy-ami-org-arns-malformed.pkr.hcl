# want: ami_org_arns: "arn:aws:organizations::111111111111:o-abc" is not an organization ARN
# want: use arn:aws:organizations::ACCOUNT:organization/o-ID
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    source_ami = "ami-0a1b2c3d4e5f60001"
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-target"
    target {
      account_id   = "222222222222"
      ami_org_arns = ["arn:aws:organizations::111111111111:o-abc"]
    }
  }
}
