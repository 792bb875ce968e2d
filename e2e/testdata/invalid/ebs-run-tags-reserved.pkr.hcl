# want: run_tags: tag key "amicrypt:run" is one amicrypt-ebs writes
# want: rename the key
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  run_tags      = { "amicrypt:run" = "mine" }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
