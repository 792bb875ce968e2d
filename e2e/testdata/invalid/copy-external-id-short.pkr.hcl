# want: external_id: "x" is 1 characters; AWS takes an external ID of 2 to 1224 characters
# want: use the one the role's trust policy names
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region      = "us-east-1"
    source_ami  = "ami-0a1b2c3d4e5f60001"
    role_name   = "amicrypt-copy"
    kms_key_id  = "alias/amicrypt-target"
    external_id = "x"
    target { account_id = "222222222222" }
  }
}
