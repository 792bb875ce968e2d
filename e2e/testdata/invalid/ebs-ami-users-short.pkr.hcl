# want: ami_users: "1234" is not an AWS account ID
# want: use the 12-digit account number
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  ami_users     = ["1234"]
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
