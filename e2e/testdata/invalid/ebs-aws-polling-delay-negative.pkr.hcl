# want: aws_polling.delay_seconds: -5 is negative
# want: use a number of seconds such as 15
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  aws_polling {
    delay_seconds = -5
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
