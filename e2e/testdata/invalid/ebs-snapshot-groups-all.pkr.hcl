# want: snapshot_groups: the only group is "all" (public)
# want: share with accounts (snapshot_users) instead
# stage: validate

source "amicrypt-ebs" "bad" {
  region          = "us-east-1"
  source_ami      = "ami-0a1b2c3d4e5f60001"
  instance_type   = "t3.micro"
  communicator    = "none"
  kms_key_id      = "alias/amicrypt-build"
  ami_name        = "corpus-{{timestamp}}"
  snapshot_groups = ["all"]
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
