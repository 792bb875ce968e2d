# amicrypt-ebs with the same source AMI, instance type and key as
# amazon-ebs.pkr.hcl: snapshots the volumes, copies them encrypted under the
# key and registers the AMI from the encrypted copies only.
packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

variable "kms_key_id" {
  type        = string
  description = "ARN of the build account's customer key, alias/amicrypt-build."
}

source "amicrypt-ebs" "al2023" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"

  ami_name   = "bench-amicrypt-ebs"
  kms_key_id = var.kms_key_id
  tags = {
    Team = "platform"
  }
}

build {
  sources = ["source.amicrypt-ebs.al2023"]
}
