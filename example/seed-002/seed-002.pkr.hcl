# Seed 002 ("Why the Guardian is using encrypted EC2 root volumes on AWS"):
# the Guardian baked in one account (AMIgo) and ran an "Image Copier" Lambda
# in every account to make an encrypted local copy, because
#
#   - encrypted AMIs can only be used where their key is: each account needs
#     its own encrypted copy;
#   - tags are not visible from other accounts: they carried them by hand and
#     added Encrypted and CopiedFromAMI;
#   - only some accounts should get a copy of a given recipe.
#
# amicrypt-copy does all of it from the build, with no Lambda to deploy:
# the source AMI's tags are written onto every copy and its snapshots, plus
# Encrypted=true, CopiedFromAMI and amicrypt:* provenance tags; the target
# blocks list which accounts get the recipe.
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

variable "recipe" {
  type    = string
  default = "ubuntu-java"
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amicrypt-ebs" "amigo" {
  region = "eu-west-1"
  source_ami_filter {
    filters     = { name = "al2023-ami-2023.*-x86_64" }
    owners      = ["amazon"]
    most_recent = true
  }
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"

  ami_name = "amigo-${var.recipe}-${local.stamp}"
  # These tags identify the image; other accounts could never see them on a
  # shared AMI. amicrypt-copy carries them over.
  tags = {
    Recipe     = var.recipe
    BuildId    = local.stamp
    AmigoStage = "PROD"
  }
}

build {
  sources = ["source.amicrypt-ebs.amigo"]

  post-processor "amicrypt-copy" {
    role_name       = "amicrypt-copy"
    kms_key_id      = "alias/amicrypt-target"
    ami_name        = "{{ .SourceAMIName }}-encrypted"
    tags            = { CopiedBy = "amicrypt-copy" }
    snapshot_tags   = { Recipe = var.recipe }
    manifest_output = "seed-002-copies.json"

    # Only the accounts that use this recipe; regions default to the
    # source AMI's (eu-west-1).
    target { account_id = "222222222222" }
    target {
      account_id  = "444444444444"
      external_id = "amicrypt-demo"
    }
  }
}
