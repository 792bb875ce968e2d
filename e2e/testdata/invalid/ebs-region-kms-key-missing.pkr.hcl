# want: region_kms_key_ids: no key for "us-west-2"
# want: add region_kms_key_ids = { "us-west-2" = "alias/NAME" }
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  ami_name      = "corpus-{{timestamp}}"
  ami_regions   = ["us-west-2"]
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
