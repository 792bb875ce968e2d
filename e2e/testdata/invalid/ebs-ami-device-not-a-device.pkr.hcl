# want: ami_block_device_mappings[0].device_name: "disk1" is not a device name
# want: use e.g. "/dev/xvdb"
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  ami_block_device_mappings {
    device_name  = "disk1"
    virtual_name = "ephemeral0"
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
