# want: snapshot_copy_duration_minutes: 20 is out of range
# want: use 15 to 2880 minutes in steps of 15
# stage: validate

source "amicrypt-ebs" "bad" {
  region                         = "us-east-1"
  source_ami                     = "ami-0a1b2c3d4e5f60001"
  instance_type                  = "t3.micro"
  communicator                   = "none"
  kms_key_id                     = "alias/amicrypt-build"
  ami_name                       = "corpus-{{timestamp}}"
  ami_regions                    = ["us-west-2"]
  snapshot_copy_duration_minutes = 20
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
