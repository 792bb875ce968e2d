# want: An argument named "copy_concurency" is not expected here
# want: Did you mean "copy_concurrency"?
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region          = "us-east-1"
    source_ami      = "ami-0a1b2c3d4e5f60001"
    role_name       = "amicrypt-copy"
    kms_key_id      = "alias/amicrypt-target"
    copy_concurency = 4
    target { account_id = "222222222222" }
  }
}
