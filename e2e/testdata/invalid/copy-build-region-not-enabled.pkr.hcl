# want: ap-southeast-3 is an opt-in region not enabled in account 222222222222
# want: or remove it from regions
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
    kms_key_id = "alias/amicrypt-target"
    regions    = ["ap-southeast-3"]
    target { account_id = "222222222222" }
  }
}
