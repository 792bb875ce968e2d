# want: kms_key_id: not set
# want: set kms_key_id = "alias/NAME"
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    layout = "single"
  }
}
