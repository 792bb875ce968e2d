# want: An argument named "mountpoint" is not expected here
# want: Did you mean "mount_point"?
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id = "alias/amicrypt-instance-store"
    mountpoint = "/data"
  }
}
