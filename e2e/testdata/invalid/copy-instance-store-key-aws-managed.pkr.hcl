# want: instance_store_kms_key_id: "alias/aws/ebs" is an AWS-managed key's alias
# want: e.g. "alias/amicrypt-instance-store"
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region                    = "us-east-1"
    source_ami                = "ami-0a1b2c3d4e5f60001"
    role_name                 = "amicrypt-copy"
    kms_key_id                = "alias/amicrypt-target"
    instance_store_kms_key_id = "alias/aws/ebs"
    target { account_id = "222222222222" }
  }
}
