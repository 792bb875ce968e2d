# want: ami_name: "{{ .Acount }}-copy" is not a valid template ({{ .Acount }} is not a variable of this template
# want: use e.g. "{{ .SourceAMIName }}-{{ .Account }}"
# stage: validate

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    source_ami = "ami-0a1b2c3d4e5f60001"
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-target"
    ami_name   = "{{ .Acount }}-copy"
    target { account_id = "222222222222" }
  }
}
