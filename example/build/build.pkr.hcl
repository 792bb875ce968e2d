# Build an AMI whose every snapshot is encrypted under a customer-managed key,
# from Amazon Linux 2023, with no unencrypted AMI at any point.
#
# Runs as is against the local emulator's default world (see README.md);
# against AWS, set the variables to your key and region.

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

variable "kms_key_id" {
  type        = string
  default     = "alias/amicrypt-build"
  description = "Customer-managed key in var.region that encrypts the AMI's snapshots."
}

variable "ami_regions" {
  type    = list(string)
  default = []
}

variable "region_kms_key_ids" {
  type    = map(string)
  default = {}
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amicrypt-ebs" "app" {
  region = var.region

  source_ami_filter {
    filters = {
      name = "al2023-ami-2023.*-x86_64"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  instance_type = "t3.micro"
  # No SSH in the emulator; provisioners below run on the Packer host.
  communicator = "none"

  kms_key_id         = var.kms_key_id
  ami_regions        = var.ami_regions
  region_kms_key_ids = var.region_kms_key_ids

  ami_name        = "amicrypt-example-${local.stamp}"
  ami_description = "Amazon Linux 2023, every volume encrypted under a customer-managed key"

  run_tags      = { Purpose = "amicrypt example build" }
  tags          = { Name = "amicrypt-example", Compliance = "PCI-DSS-3.4.1" }
  snapshot_tags = { Name = "amicrypt-example" }
}

build {
  sources = ["source.amicrypt-ebs.app"]

  provisioner "shell-local" {
    inline = [
      "echo 'building from ${build.SourceAMIName} (${build.SourceAMI}), key ${build.KmsKeyArn}'",
      "echo 'source owner ${build.SourceAMIOwner}, created ${build.SourceAMICreationDate}, build region ${build.BuildRegion}'",
    ]
  }

  post-processor "manifest" {
    output = "manifest.json"
  }
}
