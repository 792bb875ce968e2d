# want: An argument named "kms_keyid" is not expected here
# want: Did you mean "kms_key_id"?
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  ami_name      = "corpus-{{timestamp}}"
  kms_keyid     = "alias/amicrypt-build"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
