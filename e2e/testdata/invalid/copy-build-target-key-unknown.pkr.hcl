# want: KMS key "alias/amicrypt-nope" in us-east-1: not found
# want: create a customer-managed key with alias alias/amicrypt-nope in account 222222222222
# stage: build

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    source_ami = "ami-0c0c0c0c0c0c00001"
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-nope"
    target { account_id = "222222222222" }
  }
}
