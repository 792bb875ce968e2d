# want: deprecate_at: "2021-06-01T00:00:00Z" is in the past
# want: use a future time
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region       = "us-east-1"
    source_ami   = "ami-0a1b2c3d4e5f60001"
    role_name    = "amicrypt-copy"
    kms_key_id   = "alias/amicrypt-target"
    deprecate_at = "2021-06-01T00:00:00Z"
    target { account_id = "222222222222" }
  }
}
