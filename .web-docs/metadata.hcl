# The Packer integration registry's description of this plugin. Kept in
# .web-docs/ next to the components/ folder that `make generate` writes from
# docs/ (see .web-docs/scripts/compile-to-webdocs.sh).
integration {
  name        = "amicrypt"
  description = "Build AMIs encrypted under a customer-managed KMS key, copy them into many AWS accounts and regions, each under its own key, and encrypt their instance-store disks at boot under a KMS-wrapped key."
  identifier  = "packer/amicrypt/amicrypt"
  flags       = ["hcp-ready"]
  docs {
    process_docs    = true
    readme_location = "./README.md"
    external_url    = "https://github.com/amicrypt/packer-plugin-amicrypt"
  }
  license {
    type = "MPL-2.0"
    url  = "https://github.com/amicrypt/packer-plugin-amicrypt/blob/main/LICENSE"
  }
  component {
    type = "builder"
    name = "amicrypt-ebs"
    slug = "ebs"
  }
  component {
    type = "post-processor"
    name = "amicrypt-copy"
    slug = "copy"
  }
  component {
    type = "provisioner"
    name = "amicrypt-instance-store"
    slug = "instance-store"
  }
}
