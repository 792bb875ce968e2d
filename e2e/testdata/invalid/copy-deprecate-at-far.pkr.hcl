# want: deprecate_at: "2199-01-01T00:00:00Z" is more than 10 years ahead
# want: use an earlier time
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
    deprecate_at = "2199-01-01T00:00:00Z"
    target { account_id = "222222222222" }
  }
}
