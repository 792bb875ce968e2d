# want: role_name: "arn:aws:iam::222222222222:role/amicrypt-copy" is not an IAM role name
# want: use the name only, e.g. "amicrypt-copy"
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    source_ami = "ami-0a1b2c3d4e5f60001"
    role_name  = "arn:aws:iam::222222222222:role/amicrypt-copy"
    kms_key_id = "alias/amicrypt-target"
    target { account_id = "222222222222" }
  }
}
