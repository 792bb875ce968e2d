# want: deprecate_at: "2030-01-02" is not an RFC 3339 time
# want: use e.g. "2030-01-02T15:04:05Z"
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  deprecate_at  = "2030-01-02"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
