# amicrypt-ebs with the same source AMI, instance type, volume and key as
# amazon-ebs.pkr.hcl, on its copy path: the build volume is unencrypted, so
# amicrypt-ebs snapshots it, copies the snapshot encrypted under the key and
# registers the AMI from the encrypted copy only.
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

variable "volume_size" {
  type        = number
  description = "Size of the root volume in GiB."
}

source "amicrypt-ebs" "al2023" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.volume_size
    volume_type           = "gp3"
    delete_on_termination = true
  }

  ami_name   = "bench-amicrypt-ebs"
  kms_key_id = var.kms_key_id
  tags = {
    Team = "platform"
  }
}

build {
  sources = ["source.amicrypt-ebs.al2023"]
}
