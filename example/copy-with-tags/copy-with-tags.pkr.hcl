# Bake in one account, then give each account that uses a recipe an
# encrypted local copy, with the image's tags carried over. Without a tool,
# teams run a copier (a Lambda, say) in every account because
#
#   - encrypted AMIs can only be used where their key is: each account needs
#     its own encrypted copy;
#   - tags are not visible from other accounts: they must be carried by hand,
#     with Encrypted and CopiedFromAMI added;
#   - only some accounts should get a copy of a given recipe.
#
# amicrypt-copy does all of it from the build, with nothing to deploy in the
# accounts: the source AMI's tags are written onto every copy and its
# snapshots, plus Encrypted=true, CopiedFromAMI and amicrypt:* provenance
# tags; the target blocks list which accounts get the recipe.
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
    manifest_output = "copy-with-tags-copies.json"

    # Only the accounts that use this recipe; regions default to the
    # source AMI's (eu-west-1).
    target { account_id = "222222222222" }
    target {
      account_id  = "444444444444"
      external_id = "amicrypt-demo"
    }
  }
}
