# want: assume_role.duration_seconds: 0 is not a setting
# want: give 900 to 43200
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
    target { account_id = "222222222222" }
    assume_role {
      role_arn         = "arn:aws:iam::111111111111:role/amicrypt-build"
      duration_seconds = 0
    }
  }
}
