# HashiCorp's amazon-ebs on its own, as users write it to get an AMI encrypted
# under their customer key: communicator none, encrypt_boot with kms_key_id.
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

variable "ami_name" {
  type    = string
  default = "amazon-ebs-e2e"
}

source "amazon-ebs" "al2023" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"

  ami_name     = var.ami_name
  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  tags = {
    Team = "platform"
  }
}

build {
  sources = ["source.amazon-ebs.al2023"]
}
