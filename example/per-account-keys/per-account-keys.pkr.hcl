# Each user account gets its own copy of the AMI under its own key, instead
# of one encrypted AMI and one key shared with every account. Sharing one
# key means weeks of key policies and grants in every account, and still
# ends with every account depending on it. This template also covers the
# errors that pattern meets:
#
#   "Creating an unencrypted copy from an encrypted snapshot is not
#    supported"             -> every copy is made with Encrypted=true.
#   "Snapshots encrypted with the AWS Managed CMK can't be shared"
#                           -> the build uses a customer-managed key; an AMI
#                              under aws/ebs is re-encrypted first through
#                              transit_kms_key_id, never shared as is.
#   "Client.InternalError: Client error on launch" with Auto Scaling
#                           -> grant_autoscaling_role gives each account's
#                              AWSServiceRoleForAutoScaling its own key,
#                              from inside that account.
#   one key for every account -> each account's copy is under its own key;
#                              the build key is lent by short-lived grants,
#                              retired when the copies are done.
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

variable "region" {
  type    = string
  default = "us-east-1"
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amicrypt-ebs" "kubernetes" {
  region = var.region
  source_ami_filter {
    filters     = { name = "al2023-ami-2023.*-x86_64" }
    owners      = ["amazon"]
    most_recent = true
  }
  instance_type = "t3.micro"
  communicator  = "none"

  # A dedicated customer-managed key of the builder account: shareable,
  # unlike the account's default aws/ebs.
  kms_key_id = "alias/amicrypt-build"

  ami_name = "bedrock-kubernetes-${local.stamp}"
  tags     = { Name = "bedrock-kubernetes", Stack = "kubernetes" }
}

build {
  sources = ["source.amicrypt-ebs.kubernetes"]

  post-processor "amicrypt-copy" {
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-target" # each "user" account's dedicated key
    regions    = ["us-east-1", "eu-west-1"]

    # If the build ever ends up under aws/ebs (EBS encryption by default),
    # re-encrypt it under this customer key before sharing.
    transit_kms_key_id = "alias/amicrypt-build"

    # Auto Scaling launches need the service-linked role on the key.
    grant_autoscaling_role = true

    on_failure      = "rollback"
    manifest_output = "per-account-keys-copies.json"

    target { account_id = "222222222222" } # kubernetes platform
    target { account_id = "333333333333" } # vod platform
  }
}
