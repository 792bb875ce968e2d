# want: source_ami: set, yet this amicrypt-copy follows a "amicrypt-ebs" source
# want: remove source_ami to copy the AMIs the build makes
# stage: validate

source "amicrypt-ebs" "app" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "app-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.app"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    source_ami = "ami-0a1b2c3d4e5f60001"
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-target"
    target { account_id = "222222222222" }
  }
}
