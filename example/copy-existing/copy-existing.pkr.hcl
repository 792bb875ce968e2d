# Copy an AMI that exists already into other accounts: amicrypt-copy behind
# Packer's null builder, taking its AMI from its own configuration
# (source_ami_filter here; source_ami takes an ID) instead of a build.
#
# Use it for a copier that runs after the bake, separately, or to finish
# only the copies of a run that failed: copies an earlier run made are found
# by their provenance tags and reused, a failed copy it kept is replaced,
# and nothing is copied twice.
#
# Runs as is against the local emulator's default world once the build
# account owns an AMI whose name matches var.ami_name: build example/build
# first (its AMIs are named amicrypt-example-TIMESTAMP).

packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "The region of the AMI to copy."
}

variable "ami_name" {
  type        = string
  default     = "amicrypt-example-*"
  description = "The name of the AMI to copy, wildcards allowed; of several matches the newest is taken."
}

variable "on_failure" {
  type    = string
  default = "keep"
}

variable "manifest_output" {
  type    = string
  default = "copy-existing-copies.json"
}

# No instance, no connection: the null builder only hands amicrypt-copy an
# artifact without AMIs, so the AMI comes from source_ami_filter below.
source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    # The source account's AMI: region is required with source_ami_filter.
    region = var.region
    source_ami_filter {
      filters     = { name = var.ami_name }
      owners      = ["self"]
      most_recent = true
    }

    role_name       = "amicrypt-copy"
    kms_key_id      = "alias/amicrypt-target"
    regions         = ["us-east-1", "eu-west-1"]
    ami_name        = "{{ .SourceAMIName }}-{{ .Account }}"
    tags            = { CopiedBy = "amicrypt-copy" }
    on_failure      = var.on_failure
    manifest_output = var.manifest_output

    target { account_id = "222222222222" }
    target { account_id = "333333333333" }
    target {
      account_id  = "444444444444"
      external_id = "amicrypt-demo"
    }
  }
}
