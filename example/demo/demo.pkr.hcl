# The README demo: build an AMI encrypted under the build account's own key
# with amicrypt-ebs, then give each of three target accounts its own copy in
# two regions, re-encrypted under that account's key, with amicrypt-copy.
#
# Runs as is against the local emulator's default world (`make demo`):
#   account 111111111111 builds (alias/amicrypt-build in every region);
#   accounts 222222222222, 333333333333, 444444444444 each have the role
#   amicrypt-copy (444444444444's wants external ID "amicrypt-demo") and a key
#   alias/amicrypt-target in every region.

packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "target_regions" {
  type    = list(string)
  default = ["us-east-1", "eu-west-1"]
}

variable "manifest_output" {
  type    = string
  default = "amicrypt-demo-copies.json"
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amicrypt-ebs" "demo" {
  region = var.region

  source_ami_filter {
    filters = {
      name = "al2023-ami-2023.*-x86_64"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  instance_type = "t3.micro"
  communicator  = "none"

  kms_key_id = "alias/amicrypt-build"

  ami_name        = "amicrypt-demo-${local.stamp}"
  ami_description = "amicrypt demo: Amazon Linux 2023, encrypted under the build account's key"
  tags = {
    Name       = "amicrypt-demo"
    Team       = "platform"
    Compliance = "PCI-DSS-3.4.1"
  }
}

build {
  sources = ["source.amicrypt-ebs.demo"]

  post-processor "amicrypt-copy" {
    # Every target assumes arn:aws:iam::ACCOUNT:role/amicrypt-copy and
    # encrypts under its own alias/amicrypt-target, resolved in that account.
    role_name       = "amicrypt-copy"
    kms_key_id      = "alias/amicrypt-target"
    regions         = var.target_regions
    ami_name        = "{{ .SourceAMIName }}-{{ .Account }}"
    tags            = { CopiedBy = "amicrypt-copy" }
    manifest_output = var.manifest_output

    target {
      account_id = "222222222222"
    }
    target {
      account_id = "333333333333"
    }
    target {
      account_id  = "444444444444"
      external_id = "amicrypt-demo"
    }
  }
}
