# want: source_ami_filter: no image matches filters
# want: owned by [amazon]
# want: loosen the filters or fix the owners
# stage: build

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  source_ami_filter {
    filters = { name = "no-such-image-*" }
    owners  = ["amazon"]
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
