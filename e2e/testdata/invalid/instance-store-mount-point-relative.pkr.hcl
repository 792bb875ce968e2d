# want: mount_point: "data" is not a clean absolute path
# want: use e.g.
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id  = "alias/amicrypt-instance-store"
    mount_point = "data"
  }
}
