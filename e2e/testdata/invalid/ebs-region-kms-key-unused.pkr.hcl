# want: region_kms_key_ids: "eu-west-1" is not in ami_regions
# want: add it to ami_regions or remove its key
# stage: validate

source "amicrypt-ebs" "bad" {
  region             = "us-east-1"
  source_ami         = "ami-0a1b2c3d4e5f60001"
  instance_type      = "t3.micro"
  communicator       = "none"
  kms_key_id         = "alias/amicrypt-build"
  ami_name           = "corpus-{{timestamp}}"
  region_kms_key_ids = { "eu-west-1" = "alias/amicrypt-build" }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
