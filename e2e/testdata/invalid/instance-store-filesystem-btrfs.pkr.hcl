# want: filesystem: "btrfs" is not supported
# want: use "ext4" (the default) or "xfs"
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id = "alias/amicrypt-instance-store"
    filesystem = "btrfs"
  }
}
