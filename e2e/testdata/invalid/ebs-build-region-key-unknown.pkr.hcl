# want: region_kms_key_ids["us-west-2"]: KMS key "alias/amicrypt-west" in us-west-2: not found
# want: create the key in us-west-2 or fix the reference
# stage: build

source "amicrypt-ebs" "bad" {
  region             = "us-east-1"
  source_ami         = "ami-0a1b2c3d4e5f60001"
  instance_type      = "t3.micro"
  communicator       = "none"
  kms_key_id         = "alias/amicrypt-build"
  ami_name           = "corpus-{{timestamp}}"
  ami_regions        = ["us-west-2"]
  region_kms_key_ids = { "us-west-2" = "alias/amicrypt-west" }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
