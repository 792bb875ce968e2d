# An amazon-ebs template as pipelines write it: an AMI encrypted under a
# customer key, found by filter, tagged with the build's data, with IMDSv2
# required on the build instance. To move it to amicrypt-ebs, change
# source "amazon-ebs" to source "amicrypt-ebs" (and source.amazon-ebs. to
# source.amicrypt-ebs. in the build block): everything else carries over,
# and no unencrypted AMI is made on the way. See README.md.
#
# Runs as is against the local emulator's default world (communicator none:
# no SSH there); against AWS, set kms_key_id to your key.

packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.8.0"
    }
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

variable "kms_key_id" {
  type    = string
  default = "alias/amicrypt-build"
}

variable "ami_name" {
  type    = string
  default = "app"
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amazon-ebs" "app" {
  region = "us-east-1"

  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-x86_64"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  instance_type = "t3.micro"
  communicator  = "none"

  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  shutdown_behavior = "terminate"
  ebs_optimized     = true

  encrypt_boot = true
  kms_key_id   = var.kms_key_id

  ami_name        = "${var.ami_name}-${local.stamp}"
  ami_description = "{{ .SourceAMIName }} hardened"
  imds_support    = "v2.0"

  run_tags = {
    Purpose = "image build"
  }
  run_volume_tag {
    name  = "Purpose"
    value = "image build volume"
  }
  tags = {
    Name       = "app-{{ .SourceAMIName }}"
    BaseAMI    = "{{ .SourceAMI }}"
    BuildRegion = "{{ .BuildRegion }}"
  }
  tag {
    key   = "Compliance"
    value = "PCI-DSS-3.4.1"
  }
  snapshot_tags = {
    Name = "app-{{ .SourceAMIName }}"
  }
}

build {
  sources = ["source.amazon-ebs.app"]

  provisioner "shell-local" {
    inline = ["echo 'building from ${build.SourceAMIName} (${build.SourceAMI}) in ${build.BuildRegion}'"]
  }

  post-processor "manifest" {
    output = "manifest.json"
  }
}
