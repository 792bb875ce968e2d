# want: ami_org_arns: "o-abc123defg" is not an organization ARN
# want: use arn:aws:organizations::ACCOUNT:organization/o-
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  ami_org_arns  = ["o-abc123defg"]
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
