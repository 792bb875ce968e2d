# want: can't assume arn:aws:iam::222222222222:role/no-such-role
# want: in the trust policy of arn:aws:iam::222222222222:role/no-such-role
# stage: build

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    source_ami = "ami-0c0c0c0c0c0c00001"
    role_name  = "no-such-role"
    kms_key_id = "alias/amicrypt-target"
    target { account_id = "222222222222" }
  }
}
