# want: assume_role.role_arn: "amicrypt-build" is not a role ARN
# want: use arn:aws:iam::ACCOUNT:role/NAME
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  assume_role {
    role_arn = "amicrypt-build"
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
