# want: devices[1]: "/dev/nvme1n1" is listed twice
# want: list each disk once
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id = "alias/amicrypt-instance-store"
    layout     = "each"
    devices    = ["/dev/nvme1n1", "/dev/nvme1n1"]
  }
}
