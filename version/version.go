// Package version holds the plugin's version, set at release time through
// ldflags on Version and VersionPrerelease.
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

var (
	// Version is the main version number, overridden by goreleaser's ldflags.
	Version = "0.1.0"
	// VersionPrerelease marks a pre-release ("dev" for local builds); empty for releases.
	VersionPrerelease = "dev"
	// VersionMetadata is optional build metadata.
	VersionMetadata = ""
	// PluginVersion is what the plugin reports to Packer.
	PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, VersionMetadata)
)
