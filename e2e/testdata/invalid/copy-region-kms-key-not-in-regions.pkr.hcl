# want: region_kms_key_ids["eu-central-1"]: eu-central-1 is not among this target's regions (eu-west-1)
# want: add eu-central-1 to regions or remove the entry
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
    target {
      account_id         = "222222222222"
      regions            = ["eu-west-1"]
      region_kms_key_ids = { "eu-central-1" = "alias/amicrypt-target" }
    }
  }
}
