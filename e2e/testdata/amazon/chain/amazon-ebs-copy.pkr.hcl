# HashiCorp's amazon-ebs (encrypt_boot with the build account's customer key)
# chained into amicrypt-copy, which gives account 222222222222 its own copy
# re-encrypted under that account's key.
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "= 1.8.0"
    }
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

variable "ami_name" {
  type    = string
  default = "amazon-ebs-chain-e2e"
}

source "amazon-ebs" "al2023" {
  region        = "us-east-1"
  instance_type = "t3.micro"
  communicator  = "none"
  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  ami_name     = var.ami_name
  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  tags = {
    Team = "platform"
  }
}

build {
  sources = ["source.amazon-ebs.al2023"]

  post-processor "amicrypt-copy" {
    role_name       = "amicrypt-copy"
    kms_key_id      = "alias/amicrypt-target"
    manifest_output = "copies.json"

    target {
      account_id = "222222222222"
      regions    = ["us-east-1"]
    }
  }
}
