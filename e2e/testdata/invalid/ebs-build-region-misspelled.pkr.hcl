# want: region: us-est-1 is not a region of this account's partition
# want: check the spelling (regions AWS lists:
# stage: build

source "amicrypt-ebs" "bad" {
  region        = "us-est-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
