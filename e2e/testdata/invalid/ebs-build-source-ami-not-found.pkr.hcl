# want: source_ami: "ami-00000000000000bad" not found in us-east-1
# want: check the ID and region
# stage: build

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-00000000000000bad"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
