# want: the name "corpus-taken-222222222222" is already in use by ami-0c0c0c0c0c0c00003 in account 222222222222
# want: change ami_name
# stage: build

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    source_ami = "ami-0c0c0c0c0c0c00001"
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-target"
    ami_name   = "corpus-taken-{{ .Account }}"
    target { account_id = "222222222222" }
  }
}
