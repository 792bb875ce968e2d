# want: ami_name: "corpus-taken-name" is already used by ami-0c0c0c0c0c0c00002 in us-east-1
# want: choose another name
# want: set force_deregister = true
# stage: build

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-taken-name"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
