# The Packer integration registry's description of this plugin. Kept in
# .web-docs/ next to the components/ folder that `make generate` writes from
# docs/ (see .web-docs/scripts/compile-to-webdocs.sh).
integration {
  name        = "amicrypt"
  description = "Build AMIs encrypted under a customer-managed KMS key, and copy them into many AWS accounts and regions, each under its own key."
  identifier  = "packer/amicrypt/amicrypt"
  flags       = ["hcp-ready"]
  docs {
    process_docs    = true
    readme_location = "./README.md"
    external_url    = "https://github.com/amicrypt/packer-plugin-amicrypt"
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
}
