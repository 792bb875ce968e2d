# want: skip_launch: true, yet launch settings are set
# want: instance_type
# want: set skip_launch = false
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  skip_launch   = true
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
