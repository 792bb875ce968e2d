# want: source_ami: "al2023" is not an AMI ID
# want: use an ID such as "ami-0a1b2c3d4e5f60001"
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "al2023"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
