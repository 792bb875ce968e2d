# want: tags: tag key "aws:team" starts with aws:
# want: rename the key (e.g. "app:team")
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  tags          = { "aws:team" = "payments" }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
