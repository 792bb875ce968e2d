# want: KMS key "alias/no-instance-store-key" in us-east-1: not found
# want: create a customer-managed symmetric key with alias alias/no-instance-store-key in account 222222222222
# stage: build

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region                    = "us-east-1"
    source_ami                = "ami-0c0c0c0c0c0c00001"
    role_name                 = "amicrypt-copy"
    kms_key_id                = "alias/amicrypt-target"
    instance_store_kms_key_id = "alias/no-instance-store-key"
    target { account_id = "222222222222" }
  }
}
