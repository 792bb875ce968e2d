package ec2

// launch_options.go: the RunInstances parameters beyond image, type,
// network and volumes (instance metadata, placement, credits, enclaves,
// licenses, capacity reservations, the spot market), checked as AWS checks
// them and kept on the instance for DescribeInstances.

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

type launchOptions struct {
	httpTokens, httpEndpoint, metadataTags string
	hopLimit                               int

	ebsOptimized bool
	shutdown     string
	cpuCredits   string

	tenancy, hostID, hostGroup string
	enclave                    bool
	licenses                   []string

	crPreference, crID, crGroup string

	spot     bool
	maxPrice string
	// spotType is the request's type (one-time or persistent) and
	// interruption what AWS does when it interrupts the instance.
	spotType, interruption string
}

var (
	capacityReservationIDPattern = regexp.MustCompile(`^cr-[0-9a-f]{8,17}$`)
	licenseConfigARNPattern      = regexp.MustCompile(`^arn:aws[a-z-]*:license-manager:[a-z0-9-]+:\d{12}:license-configuration:lic-[0-9a-f]+$`)
)

// oneOfValues returns the parameter, or InvalidParameterValue when it is
// given and not one of allowed (emulator convention for the wording).
func oneOfValues(p ec2Params, name string, allowed ...string) (string, *core.APIError) {
	v := p.str(name)
	if v == "" {
		return "", nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", core.Errf("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Expected one of: %v", v, name, allowed)
}

func parseLaunchOptions(p ec2Params) (launchOptions, *core.APIError) {
	var o launchOptions
	var err *core.APIError
	if o.httpTokens, err = oneOfValues(p, "MetadataOptions.HttpTokens", "optional", "required"); err != nil {
		return o, err
	}
	if o.httpEndpoint, err = oneOfValues(p, "MetadataOptions.HttpEndpoint", "enabled", "disabled"); err != nil {
		return o, err
	}
	if o.metadataTags, err = oneOfValues(p, "MetadataOptions.InstanceMetadataTags", "enabled", "disabled"); err != nil {
		return o, err
	}
	if o.hopLimit, err = p.integer("MetadataOptions.HttpPutResponseHopLimit", 0); err != nil {
		return o, err
	}
	if p.has("MetadataOptions.HttpPutResponseHopLimit") && (o.hopLimit < 1 || o.hopLimit > 64) {
		return o, core.Errf("InvalidParameterValue", "Value (%d) for parameter MetadataOptions.HttpPutResponseHopLimit is invalid. Valid range is 1 to 64.", o.hopLimit)
	}
	if o.ebsOptimized, err = p.boolean("EbsOptimized"); err != nil {
		return o, err
	}
	if o.shutdown, err = oneOfValues(p, "InstanceInitiatedShutdownBehavior", "stop", "terminate"); err != nil {
		return o, err
	}
	if o.cpuCredits, err = oneOfValues(p, "CreditSpecification.CpuCredits", "standard", "unlimited"); err != nil {
		return o, err
	}
	if o.tenancy, err = oneOfValues(p, "Placement.Tenancy", "default", "dedicated", "host"); err != nil {
		return o, err
	}
	o.hostID, o.hostGroup = p.str("Placement.HostId"), p.str("Placement.HostResourceGroupArn")
	if (o.hostID != "" || o.hostGroup != "") && o.tenancy != "" && o.tenancy != "host" {
		return o, core.Errf("InvalidParameterCombination", "A host ID or host resource group requires tenancy 'host'.")
	}
	if o.enclave, err = p.boolean("EnclaveOptions.Enabled"); err != nil {
		return o, err
	}
	for _, n := range p.indices("LicenseSpecification") {
		arn := p.str(fmt.Sprintf("LicenseSpecification.%d.LicenseConfigurationArn", n))
		if !licenseConfigARNPattern.MatchString(arn) {
			return o, core.Errf("InvalidParameterValue", "Value (%s) for parameter LicenseConfigurationArn is invalid.", arn)
		}
		o.licenses = append(o.licenses, arn)
	}
	if o.crPreference, err = oneOfValues(p, "CapacityReservationSpecification.CapacityReservationPreference", "open", "none", "capacity-reservations-only"); err != nil {
		return o, err
	}
	o.crID = p.str("CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId")
	o.crGroup = p.str("CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationResourceGroupArn")
	if o.crID != "" && !capacityReservationIDPattern.MatchString(o.crID) {
		// Emulator convention: every well-formed reservation exists.
		return o, core.Errf("InvalidCapacityReservationId.Malformed", "The capacity reservation ID '%s' is malformed", o.crID)
	}
	if o.crPreference != "" && (o.crID != "" || o.crGroup != "") {
		return o, core.Errf("InvalidParameterCombination", "CapacityReservationPreference and CapacityReservationTarget can't be specified together.")
	}
	market, err := oneOfValues(p, "InstanceMarketOptions.MarketType", "spot", "capacity-block")
	if err != nil {
		return o, err
	}
	o.spot = market == "spot"
	o.maxPrice = p.str("InstanceMarketOptions.SpotOptions.MaxPrice")
	if o.maxPrice != "" {
		// "If you specify a maximum price, it must be more than USD
		// $0.001" (API_SpotMarketOptions.html).
		if price, perr := strconv.ParseFloat(o.maxPrice, 64); perr != nil || price <= 0.001 {
			return o, core.Errf("InvalidParameterValue", "Value (%s) for parameter MaxPrice is invalid. A maximum price must be more than USD 0.001.", o.maxPrice)
		}
	}
	if o.spotType, err = oneOfValues(p, "InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time", "persistent"); err != nil {
		return o, err
	}
	if o.interruption, err = oneOfValues(p, "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior", "hibernate", "stop", "terminate"); err != nil {
		return o, err
	}
	o.spotType, o.interruption = orDefault(o.spotType, "one-time"), orDefault(o.interruption, "terminate")
	if o.spotType == "persistent" && o.interruption == "terminate" {
		// "For RunInstances, persistent Spot Instance requests are only
		// supported when the instance interruption behavior is either
		// hibernate or stop" (the text is an emulator convention).
		return o, core.Errf("InvalidParameterCombination", "A persistent Spot Instance request needs InstanceInterruptionBehavior stop or hibernate, not terminate.")
	}
	if o.spot && (o.crID != "" || o.crGroup != "") {
		return o, core.Errf("InvalidParameterCombination", "Spot Instances can't be launched into a Capacity Reservation.")
	}
	if o.spot && o.enclave {
		return o, core.Errf("InvalidParameterCombination", "Enclaves are not supported for Spot Instances.")
	}
	return o, nil
}

// apply records the options on a new instance.
func (o launchOptions) apply(inst *ec2Instance) {
	inst.HTTPEndpoint, inst.HTTPHopLimit, inst.MetadataTags = o.httpEndpoint, o.hopLimit, o.metadataTags
	inst.EbsOptimized, inst.ShutdownBehavior, inst.CPUCredits = o.ebsOptimized, o.shutdown, o.cpuCredits
	inst.Tenancy, inst.HostID, inst.HostResourceGroupARN = o.tenancy, o.hostID, o.hostGroup
	inst.EnclaveEnabled, inst.Licenses = o.enclave, o.licenses
	inst.CapacityReservationPreference, inst.CapacityReservationID, inst.CapacityReservationGroupARN = o.crPreference, o.crID, o.crGroup
	if o.spot {
		inst.Lifecycle = "spot"
		if inst.ShutdownBehavior == "" {
			inst.ShutdownBehavior = "terminate"
		}
	}
}
