# want: devices: layout "raid0" stripes several disks, but only "/dev/nvme1n1" is listed
# want: set layout = "single"
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id = "alias/amicrypt-instance-store"
    layout     = "raid0"
    devices    = ["/dev/nvme1n1"]
  }
}
