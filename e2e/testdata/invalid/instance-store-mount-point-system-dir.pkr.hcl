# want: mount_point: "/usr" would hide a system directory
# want: use a directory of its own
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id  = "alias/amicrypt-instance-store"
    mount_point = "/usr"
  }
}
