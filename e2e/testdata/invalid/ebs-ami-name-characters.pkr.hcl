# want: ami_name: "app:v1*" is not a valid AMI name
# want: clean_resource_name
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "app:v1*"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
