# want: max_retries: 0 is not a setting
# want: remove the field for the default
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  max_retries = 0
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
