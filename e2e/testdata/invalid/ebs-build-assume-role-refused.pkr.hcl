# want: assume_role.role_arn: the build's credentials can't assume arn:aws:iam::111111111111:role/no-such-role
# want: in the trust policy of arn:aws:iam::111111111111:role/no-such-role
# stage: build

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  assume_role {
    role_arn = "arn:aws:iam::111111111111:role/no-such-role"
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
