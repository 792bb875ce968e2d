# want: source_ami: not set
# want: set source_ami = "ami-…" or a source_ami_filter
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
