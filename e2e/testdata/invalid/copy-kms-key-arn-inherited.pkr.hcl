# want: kms_key_id: "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab" is a key of account 111111111111, but target[0] (account 222222222222) inherits it
# want: use an alias name (alias/NAME) at the top level
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
    kms_key_id = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    target { account_id = "222222222222" }
  }
}
