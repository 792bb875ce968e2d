# want: kms_timeout: "90" is not a duration
# want: write it like "60s" or "2m"
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id  = "alias/amicrypt-instance-store"
    kms_timeout = "90"
  }
}
