# want: deprecate_at: "next year" is not an RFC 3339 time
# want: use e.g. "2027-01-31T00:00:00Z"
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
    deprecate_at = "next year"
    target { account_id = "222222222222" }
  }
}
