# want: kms_key_id: "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab" belongs to account 111111111111, not 222222222222
# want: use alias/NAME or a key ARN of account 222222222222
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
      account_id = "222222222222"
      kms_key_id = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    }
  }
}
