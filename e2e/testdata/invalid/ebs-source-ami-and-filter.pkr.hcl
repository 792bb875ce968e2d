# want: source_ami, source_ami_filter: both set; keep one
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  source_ami_filter {
    filters = { name = "al2023-ami-*" }
    owners  = ["amazon"]
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
