# want: region: "us_east_1" is not a region name
# want: use a name such as "us-east-1"
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us_east_1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
