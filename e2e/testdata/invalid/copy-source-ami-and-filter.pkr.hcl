# want: source_ami, source_ami_filter: both set
# want: keep source_ami (an ID) or source_ami_filter (a search), not both
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
    kms_key_id = "alias/amicrypt-target"
    target { account_id = "222222222222" }
    source_ami_filter {
      filters = { name = "al2023-ami-*" }
      owners  = ["amazon"]
    }
  }
}
