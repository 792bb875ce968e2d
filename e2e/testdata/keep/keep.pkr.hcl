# amicrypt-ebs into amicrypt-copy, for the tests of what a failed copy run
# leaves: the build's AMI must survive it. The targets, regions and copy
# names are those of example/copy-existing, so that example can finish the
# copies of a failed run.

packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

variable "on_failure" {
  type    = string
  default = "rollback"
}

# The key of account 333333333333: "alias/missing" makes preflight refuse.
variable "key_333" {
  type    = string
  default = "alias/amicrypt-target"
}

variable "manifest_output" {
  type    = string
  default = "copies.json"
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amicrypt-ebs" "app" {
  region = "us-east-1"
  source_ami_filter {
    filters     = { name = "al2023-ami-2023.*-x86_64" }
    owners      = ["amazon"]
    most_recent = true
  }
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "amicrypt-keep-${local.stamp}"
  tags          = { Name = "amicrypt-keep", Team = "platform" }
}

build {
  sources = ["source.amicrypt-ebs.app"]

  post-processor "amicrypt-copy" {
    role_name       = "amicrypt-copy"
    kms_key_id      = "alias/amicrypt-target"
    regions         = ["us-east-1", "eu-west-1"]
    ami_name        = "{{ .SourceAMIName }}-{{ .Account }}"
    tags            = { CopiedBy = "amicrypt-copy" }
    on_failure      = var.on_failure
    manifest_output = var.manifest_output

    target { account_id = "222222222222" }
    target {
      account_id = "333333333333"
      kms_key_id = var.key_333
    }
    target {
      account_id  = "444444444444"
      external_id = "amicrypt-demo"
    }
  }
}
