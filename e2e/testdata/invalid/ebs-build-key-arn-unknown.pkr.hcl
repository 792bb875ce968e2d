# want: kms_key_id: KMS key "arn:aws:kms:us-east-1:111111111111:key/00000000-0000-4000-8000-000000000000" in us-east-1: not found
# want: create the key in us-east-1 or fix the reference
# stage: build

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "arn:aws:kms:us-east-1:111111111111:key/00000000-0000-4000-8000-000000000000"
  ami_name      = "corpus-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
