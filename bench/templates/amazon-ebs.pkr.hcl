# HashiCorp's amazon-ebs, the way users get an AMI encrypted under their own
# key today: launch the source AMI, register an (unencrypted) intermediate AMI,
# copy it encrypted with encrypt_boot + kms_key_id, delete the intermediate.
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "= 1.8.0"
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

source "amazon-ebs" "al2023" {
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

  ami_name     = "bench-amazon-ebs"
  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  tags = {
    Team = "platform"
  }
}

build {
  sources = ["source.amazon-ebs.al2023"]
}
