//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// offlineProxy points every HTTP(S) client at a closed loopback port, so a
// Packer that tries to reach GitHub or the checkpoint service fails loudly
// instead of silently succeeding on a machine with network.
var offlineProxy = map[string]string{
	"HTTP_PROXY":  "http://127.0.0.1:9",
	"HTTPS_PROXY": "http://127.0.0.1:9",
	"http_proxy":  "http://127.0.0.1:9",
	"https_proxy": "http://127.0.0.1:9",
	"NO_PROXY":    "",
	"no_proxy":    "",
}

const requiredPluginsBlock = `packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = %q
    }
  }
}
`

// minimalTemplate uses one amicrypt-ebs source (re-encrypting an existing
// AMI, so no launch fields) and one amicrypt-copy post-processor with one
// target, each with the fewest fields it accepts.
const minimalTemplate = `
source "amicrypt-ebs" "app" {
  region      = "us-east-1"
  source_ami  = "ami-0a1b2c3d4e5f60001"
  skip_launch = true
  kms_key_id  = "alias/amicrypt-build"
  ami_name    = "amicrypt-init-validate"
%s}

build {
  sources = ["source.amicrypt-ebs.app"]

  post-processor "amicrypt-copy" {
    region     = "us-east-1"
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-target"
    target {
      account_id = "222222222222"
    }
%s  }
}
`

func TestInitAndValidate(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}

	installed := env.Packer(t, env.Root, "plugins", "installed")
	if installed.ExitCode != 0 {
		t.Fatalf("packer plugins installed: exit %d\n%s", installed.ExitCode, installed.Output)
	}
	wantPath := regexp.MustCompile(`github\.com/amicrypt/amicrypt/packer-plugin-amicrypt_v` +
		regexp.QuoteMeta(PluginVersion()) + `_x5\.0_[a-z0-9]+_[a-z0-9]+`)
	if !wantPath.MatchString(installed.Output) {
		t.Fatalf("packer plugins installed does not list amicrypt v%s under %s:\n%s", PluginVersion(), env.PluginDir, installed.Output)
	}

	tests := []struct {
		name         string
		version      string
		extraSource  string
		extraCopy    string
		wantInit     int
		wantValidate int
		wantOutput   []string // on the failing command
	}{
		{
			name:     "installed version satisfies the constraint",
			version:  ">= 0.1.0",
			wantInit: 0, wantValidate: 0,
		},
		{
			name:     "exact version",
			version:  PluginVersion(),
			wantInit: 0, wantValidate: 0,
		},
		{
			// Proves the offline proxy bites: an unsatisfied constraint makes
			// init go online, which must fail here.
			name:       "constraint no installed version meets",
			version:    ">= 9.0.0",
			wantInit:   1,
			wantOutput: []string{"github.com/amicrypt/amicrypt"},
		},
		{
			// Proves validate really decodes through the plugin's HCL2 spec.
			name:         "unknown builder field",
			version:      ">= 0.1.0",
			extraSource:  "  no_such_field = true\n",
			wantInit:     0,
			wantValidate: 1,
			wantOutput:   []string{"no_such_field"},
		},
		{
			// And through the post-processor's.
			name:         "unknown post-processor field",
			version:      ">= 0.1.0",
			extraCopy:    "    no_such_copy_field = true\n",
			wantInit:     0,
			wantValidate: 1,
			wantOutput:   []string{"no_such_copy_field"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			WriteFile(t, dir, "template.pkr.hcl",
				fmt.Sprintf(requiredPluginsBlock, tc.version)+fmt.Sprintf(minimalTemplate, tc.extraSource, tc.extraCopy))

			before := pluginFiles(t, env.PluginDir)
			initRes := env.Packer(t, dir, "init", ".")
			if initRes.ExitCode != tc.wantInit {
				t.Fatalf("packer init: exit %d, want %d\n%s", initRes.ExitCode, tc.wantInit, initRes.Output)
			}
			if after := pluginFiles(t, env.PluginDir); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("packer init changed the plugin directory:\nbefore %v\nafter  %v", before, after)
			}
			if tc.wantInit != 0 {
				assertContains(t, "packer init", initRes.Output, tc.wantOutput)
				return
			}

			valRes := env.Packer(t, dir, "validate", ".")
			if valRes.ExitCode != tc.wantValidate {
				t.Fatalf("packer validate: exit %d, want %d\n%s", valRes.ExitCode, tc.wantValidate, valRes.Output)
			}
			if tc.wantValidate == 0 {
				assertContains(t, "packer validate", valRes.Output, []string{"The configuration is valid."})
			} else {
				assertContains(t, "packer validate", valRes.Output, tc.wantOutput)
			}
		})
	}
}

func assertContains(t *testing.T, what, output string, wants []string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(output, want) {
			t.Errorf("%s output lacks %q:\n%s", what, want, output)
		}
	}
}

// pluginFiles lists the plugin directory's files, relative to it.
func pluginFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
