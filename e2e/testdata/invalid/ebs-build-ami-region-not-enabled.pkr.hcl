# want: ami_regions: ap-southeast-3 is an opt-in region that account 111111111111 hasn't enabled
# want: remove it from ami_regions
# stage: build

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  ami_regions   = ["ap-southeast-3"]
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
