# want: mapper_name: "my disk" is not a device-mapper name
# want: use 1-64 letters, digits
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id  = "alias/amicrypt-instance-store"
    mapper_name = "my disk"
  }
}
