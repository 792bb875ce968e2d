# want: transit_kms_key_id: "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab" is in region eu-west-1, not us-east-1
# want: give a key of us-east-1, or an alias name
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region             = "us-east-1"
    source_ami         = "ami-0a1b2c3d4e5f60001"
    role_name          = "amicrypt-copy"
    kms_key_id         = "alias/amicrypt-target"
    transit_kms_key_id = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    target { account_id = "222222222222" }
  }
}
