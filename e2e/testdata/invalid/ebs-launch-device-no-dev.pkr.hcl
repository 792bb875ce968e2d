# want: launch_block_device_mappings[0].device_name: "xvdf" has no /dev/ prefix
# want: use "/dev/xvdf"
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  launch_block_device_mappings {
    device_name = "xvdf"
    volume_size = 10
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
