# want: deprecate_at: "2199-01-01T00:00:00Z" is more than 10 years ahead
# want: use an earlier time
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  deprecate_at  = "2199-01-01T00:00:00Z"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
