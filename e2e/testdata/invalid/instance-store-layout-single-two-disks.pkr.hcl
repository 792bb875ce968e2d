# want: devices: layout "single" takes one disk, but 2 are listed
# want: set layout = "each" or "raid0"
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id = "alias/amicrypt-instance-store"
    layout     = "single"
    devices    = ["/dev/nvme1n1", "/dev/nvme2n1"]
  }
}
