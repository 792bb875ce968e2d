# want: assume_role.external_id: "x y!" contains
# want: use the one the role's trust policy names
# stage: validate

source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "corpus-{{timestamp}}"
  assume_role {
    role_arn    = "arn:aws:iam::111111111111:role/amicrypt-build"
    external_id = "x y!"
  }
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
