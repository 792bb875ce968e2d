# want: ami_block_device_mappings[0].snapshot_id: "snap-0a1b2c3d4e5f60001" can't be put in the AMI as is
# want: move the device to launch_block_device_mappings
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  ami_block_device_mappings {
    device_name = "/dev/sdf"
    snapshot_id = "snap-0a1b2c3d4e5f60001"
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
