# want: aws_polling.max_attempts: 0 is not a setting
# want: aws_polling.delay_seconds: 0 is not a setting
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  aws_polling {
    max_attempts  = 0
    delay_seconds = 0
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
