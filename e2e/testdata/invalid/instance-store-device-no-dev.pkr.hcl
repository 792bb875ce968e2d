# want: devices[0]: "nvme1n1" is not a device path
# want: e.g. "/dev/nvme1n1"
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id = "alias/amicrypt-instance-store"
    devices    = ["nvme1n1"]
  }
}
