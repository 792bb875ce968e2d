# want: kms_key_id: "alias/aws/ebs" is an AWS-managed key
# want: create a customer-managed key
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id = "alias/aws/ebs"
  }
}
