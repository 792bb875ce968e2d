# want: target[0] (account 222222222222).role_arn: "amicrypt-copy" is not a role ARN
# want: use arn:aws:iam::222222222222:role/NAME
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    source_ami = "ami-0a1b2c3d4e5f60001"
    kms_key_id = "alias/amicrypt-target"
    target {
      account_id = "222222222222"
      role_arn   = "amicrypt-copy"
    }
  }
}
