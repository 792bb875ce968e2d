# want: instance_type: not set
# want: set instance_type = "t3.micro"
# stage: validate

source "amicrypt-ebs" "bad" {
  region       = "us-east-1"
  source_ami   = "ami-0a1b2c3d4e5f60001"
  communicator = "none"
  kms_key_id   = "alias/amicrypt-build"
  ami_name     = "corpus-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
