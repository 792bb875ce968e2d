# want: ami_ou_arns: "ou-ab12-cdef3456" is not an organizational unit ARN
# want: use arn:aws:organizations::ACCOUNT:ou/o-ID/ou-ID
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region      = "us-east-1"
    source_ami  = "ami-0a1b2c3d4e5f60001"
    role_name   = "amicrypt-copy"
    kms_key_id  = "alias/amicrypt-target"
    ami_ou_arns = ["ou-ab12-cdef3456"]
    target { account_id = "222222222222" }
  }
}
