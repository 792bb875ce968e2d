# want: assume_role.duration_seconds: 60 is out of range
# want: use 900 to 43200 seconds
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  assume_role {
    role_arn         = "arn:aws:iam::111111111111:role/amicrypt-build"
    duration_seconds = 60
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
