# want: ami-00000000000000bad does not exist in us-east-1 as account 111111111111 sees it
# want: set region to the AMI's region
# stage: build

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    source_ami = "ami-00000000000000bad"
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-target"
    target { account_id = "222222222222" }
  }
}
