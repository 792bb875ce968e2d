# want: kms_key_id: "instance-store" is not a KMS key reference
# want: an alias name (alias/NAME)
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id = "instance-store"
  }
}
