# want: encryption_context: key "amicrypt:luks-uuid" starts with "amicrypt:"
# want: rename the key
# stage: validate

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
    kms_key_id         = "alias/amicrypt-instance-store"
    encryption_context = { "amicrypt:luks-uuid" = "x" }
  }
}
