# want: layout: "raid5" is not a layout
# want: use "single" (one disk)
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id = "alias/amicrypt-instance-store"
    layout     = "raid5"
  }
}
