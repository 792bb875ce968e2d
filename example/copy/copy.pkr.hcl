# amicrypt-copy with every option, fed by an amicrypt-ebs build that
# re-encrypts an existing AMI without launching (skip_launch). See
# docs/post-processors/copy.mdx for each field.
#
# Runs as is against the local emulator's default world.

packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amicrypt-ebs" "reencrypt" {
  region      = "us-east-1"
  source_ami  = "ami-0a1b2c3d4e5f60001"
  skip_launch = true
  kms_key_id  = "alias/amicrypt-build"
  ami_name    = "amicrypt-copy-example-${local.stamp}"
  tags        = { Name = "amicrypt-copy-example", Team = "platform" }
}

build {
  sources = ["source.amicrypt-ebs.reencrypt"]

  post-processor "amicrypt-copy" {
    # Source side (defaults: the SDK's credential chain, the AMI's region).
    region = "us-east-1"

    # Defaults for every target.
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-target"
    regions    = ["us-east-1", "us-west-2"]

    ami_name        = "{{ .SourceAMIName }}-{{ .Account }}"
    ami_description = "Copy of {{ .SourceAMI }} for {{ .Account }} in {{ .Region }}"
    tags            = { CopiedBy = "amicrypt-copy" }
    snapshot_tags   = { Backup = "daily" }
    deprecate_at    = "2030-01-01T00:00:00Z"
    deregistration_protection {
      enabled = false
    }

    # copy_concurrency        = 50 # optional cap; unset, copies are bounded per account-region only
    destination_copy_limit    = 5
    on_failure                = "rollback"
    manifest_output           = "copies.json"
    grant_propagation_timeout = "5m"
    lease_duration            = "5m" # a killed run's grants are taken back by the next run after this
    grant_autoscaling_role    = true
    create_missing_keys       = false

    target {
      account_id = "222222222222"
      ami_users  = ["333333333333"]
    }
    target {
      account_id = "333333333333"
      regions    = ["eu-west-1"]
      region_kms_key_ids = {
        "eu-west-1" = "alias/amicrypt-target"
      }
    }
    target {
      account_id  = "444444444444"
      role_arn    = "arn:aws:iam::444444444444:role/amicrypt-copy"
      external_id = "amicrypt-demo"
    }
    # The build account itself, under its own key.
    target {
      account_id = "111111111111"
      role_arn   = "arn:aws:iam::111111111111:role/amicrypt-build"
      kms_key_id = "alias/amicrypt-build"
    }
  }
}
