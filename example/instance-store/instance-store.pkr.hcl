# Build an Amazon Linux 2023 AMI encrypted under a customer-managed key
# (amicrypt-ebs) whose instances encrypt their EC2 instance-store disks at
# every boot with LUKS2 under a key wrapped by KMS (amicrypt-instance-store).
#
# Needs AWS: the provisioner reaches the build instance over SSH, which the
# local emulator doesn't offer (`packer validate` works offline). Set the
# variables to your keys and region.

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
  description = "Customer-managed key in var.region that encrypts the AMI's EBS snapshots (the root volume)."
}

variable "instance_store_kms_key_id" {
  type        = string
  default     = "alias/amicrypt-instance-store"
  description = "Customer-managed key that wraps the instance-store disks' keys, resolved in each instance's own account and region."
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

  # Any type builds the image: the provisioner never touches the build
  # instance's own instance store. Launch the AMI on a type that has one
  # (m6id, c6id, i4i, …) to see the agent at work.
  instance_type = "t3.micro"
  ssh_username  = "ec2-user"

  kms_key_id = var.kms_key_id
  ami_name   = "amicrypt-instance-store-${local.stamp}"
  tags       = { Name = "amicrypt-instance-store-example", Compliance = "PCI-DSS-3.4.1" }
}

build {
  sources = ["source.amicrypt-ebs.app"]

  # What amicrypt-agent needs in the image: cryptsetup >= 2.5 and mdadm
  # (layout raid0); AL2023 has systemd and e2fsprogs already.
  provisioner "shell" {
    inline = ["sudo dnf install -y cryptsetup mdadm"]
  }

  provisioner "amicrypt-instance-store" {
    kms_key_id         = var.instance_store_kms_key_id
    layout             = "raid0" # every instance-store disk in one volume (one disk: as is)
    mount_point        = "/data"
    encryption_context = { app = "amicrypt-example" }
    kms_timeout        = "90s"
  }

  post-processor "manifest" {
    output = "manifest.json"
  }
}
