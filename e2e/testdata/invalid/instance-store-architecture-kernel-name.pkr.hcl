# want: architecture: "aarch64" is the kernel's name
# want: use the Go name "arm64"
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id   = "alias/amicrypt-instance-store"
    architecture = "aarch64"
  }
}
