# want: lease_duration: "2h" is out of range
# want: use 5s to 1h0m0s
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region         = "us-east-1"
    source_ami     = "ami-0a1b2c3d4e5f60001"
    role_name      = "amicrypt-copy"
    kms_key_id     = "alias/amicrypt-target"
    lease_duration = "2h"
    target { account_id = "222222222222" }
  }
}
