package ec2

// fleet.go: launch templates, EC2 Fleet of type instant and the one-time
// spot instance requests behind spot instances, as amazon-ebs (and
// amicrypt-ebs) launch a spot build instance: CreateLaunchTemplate,
// CreateFleet (instant, spot), then TerminateInstances and
// DeleteLaunchTemplate.

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// ec2LaunchTemplate is a launch template with its one version: the launch
// parameters in RunInstances' names (LaunchTemplateData.X is kept as X).
type ec2LaunchTemplate struct {
	ID        string              `json:"id"`
	Owner     string              `json:"owner"`
	Region    string              `json:"region"`
	Name      string              `json:"name"`
	Data      map[string][]string `json:"data"`
	Created   time.Time           `json:"created"`
	Principal string              `json:"principal,omitempty"`
}

// ec2Fleet is an EC2 Fleet.
type ec2Fleet struct {
	ID        string    `json:"id"`
	Owner     string    `json:"owner"`
	Region    string    `json:"region"`
	Type      string    `json:"type"`
	Instances []string  `json:"instances"`
	Created   time.Time `json:"created"`
	Deleted   bool      `json:"deleted,omitempty"`
	Principal string    `json:"principal,omitempty"`
}

// ec2SpotRequest is the one-time spot instance request of a spot instance.
type ec2SpotRequest struct {
	ID         string    `json:"id"`
	Owner      string    `json:"owner"`
	Region     string    `json:"region"`
	InstanceID string    `json:"instance_id"`
	Created    time.Time `json:"created"`
	Cancelled  bool      `json:"cancelled,omitempty"`
	Principal  string    `json:"principal,omitempty"`
	// Type is "persistent" or, when empty, "one-time"; Interruption the
	// instance interruption behaviour ("terminate" when empty).
	Type         string `json:"type,omitempty"`
	Interruption string `json:"interruption,omitempty"`
}

func launchTemplatesOf(s *store) map[string]*ec2LaunchTemplate { return s.LaunchTemplates }
func fleetsOf(s *store) map[string]*ec2Fleet                   { return s.Fleets }
func spotRequestsOf(s *store) map[string]*ec2SpotRequest       { return s.SpotRequests }

func (x *ec2LaunchTemplate) resourceID() string { return x.ID }
func (x *ec2LaunchTemplate) scope() core.Scope  { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2Fleet) resourceID() string          { return x.ID }
func (x *ec2Fleet) scope() core.Scope           { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2SpotRequest) resourceID() string    { return x.ID }
func (x *ec2SpotRequest) scope() core.Scope     { return core.Scope{Account: x.Owner, Region: x.Region} }

var launchTemplateNamePattern = regexp.MustCompile(`^[a-zA-Z0-9()./_-]{3,128}$`)

func (e *view) launchTemplateByName(c *core.Call, name string) *ec2LaunchTemplate {
	for _, lt := range e.own(c).LaunchTemplates {
		if lt.Name == name {
			return lt
		}
	}
	return nil
}

// findLaunchTemplate resolves LaunchTemplateId or LaunchTemplateName under prefix.
func (e *view) findLaunchTemplate(c *core.Call, p ec2Params, prefix string) (*ec2LaunchTemplate, *core.APIError) {
	id, name := p.str(prefix+"LaunchTemplateId"), p.str(prefix+"LaunchTemplateName")
	switch {
	case id != "" && name != "":
		return nil, core.Errf("InvalidParameterCombination", "Launch template ID and launch template name can't be specified together.")
	case id != "":
		lt, ok := get(e, launchTemplatesOf, id)
		if !ok || lt.Owner != c.Account || lt.Region != c.Region {
			return nil, core.Errf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
		}
		return lt, nil
	case name != "":
		lt := e.launchTemplateByName(c, name)
		if lt == nil {
			return nil, core.Errf("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
		}
		return lt, nil
	}
	return nil, core.Errf("MissingParameter", "The request must contain the parameter LaunchTemplateId or LaunchTemplateName")
}

type xmlLaunchTemplate struct {
	LaunchTemplateID     string   `xml:"launchTemplateId"`
	LaunchTemplateName   string   `xml:"launchTemplateName"`
	CreateTime           string   `xml:"createTime"`
	CreatedBy            string   `xml:"createdBy"`
	DefaultVersionNumber int      `xml:"defaultVersionNumber"`
	LatestVersionNumber  int      `xml:"latestVersionNumber"`
	TagSet               []xmlTag `xml:"tagSet>item,omitempty"`
}

func (e *view) launchTemplateXML(lt *ec2LaunchTemplate, account string) xmlLaunchTemplate {
	return xmlLaunchTemplate{LaunchTemplateID: lt.ID, LaunchTemplateName: lt.Name, CreateTime: ec2Time(lt.Created), CreatedBy: lt.Principal,
		DefaultVersionNumber: 1, LatestVersionNumber: 1, TagSet: e.tagSet(lt.ID, account)}
}

type launchTemplateOutput struct {
	LaunchTemplate xmlLaunchTemplate `xml:"launchTemplate"`
}

func (e *view) ec2CreateLaunchTemplate(c *core.Call, p ec2Params) (any, *core.APIError) {
	name, err := p.required("LaunchTemplateName")
	if err != nil {
		return nil, err
	}
	if !launchTemplateNamePattern.MatchString(name) {
		return nil, core.Errf("InvalidLaunchTemplateName.MalformedException", "A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.'")
	}
	if e.launchTemplateByName(c, name) != nil {
		return nil, core.Errf("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
	}
	specs, err := p.tagSpecs("launch-template")
	if err != nil {
		return nil, err
	}
	data := map[string][]string{}
	for k, v := range p.v {
		if rest, ok := strings.CutPrefix(k, "LaunchTemplateData."); ok {
			data[rest] = v
		}
	}
	if _, err := parseLaunchOptions(ec2Params{v: data}); err != nil {
		return nil, err
	}
	if _, err := (ec2Params{v: data}).tagSpecs("instance", "volume", "network-interface", "spot-instances-request"); err != nil {
		return nil, err
	}
	lt := &ec2LaunchTemplate{ID: e.newID("lt"), Owner: c.Account, Region: c.Region, Name: name, Data: data, Created: e.clock.Now(), Principal: c.Principal}
	put(e, launchTemplatesOf, lt)
	if t := tagsFor(specs, "launch-template"); len(t) > 0 {
		e.setTags(lt.ID, c.Account, t)
	}
	c.Note("launchTemplateId", lt.ID)
	return launchTemplateOutput{LaunchTemplate: e.launchTemplateXML(lt, c.Account)}, nil
}

func (e *view) ec2DeleteLaunchTemplate(c *core.Call, p ec2Params) (any, *core.APIError) {
	lt, err := e.findLaunchTemplate(c, p, "")
	if err != nil {
		return nil, err
	}
	out := launchTemplateOutput{LaunchTemplate: e.launchTemplateXML(lt, c.Account)}
	del(e, launchTemplatesOf, lt)
	c.Note("launchTemplateId", lt.ID)
	return out, nil
}

type describeLaunchTemplatesOutput struct {
	LaunchTemplates []xmlLaunchTemplate `xml:"launchTemplates>item"`
}

func (e *view) ec2DescribeLaunchTemplates(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids, names := p.list("LaunchTemplateId"), p.list("LaunchTemplateName")
	filters := p.filters()
	out := describeLaunchTemplatesOutput{LaunchTemplates: []xmlLaunchTemplate{}}
	for _, id := range sortedKeys(e.own(c).LaunchTemplates) {
		lt := e.own(c).LaunchTemplates[id]
		if (len(ids) > 0 || len(names) > 0) && !contains(ids, lt.ID) && !contains(names, lt.Name) {
			continue
		}
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
			if v, ok, handled := e.tagFilterValues(lt.ID, c.Account, name); handled {
				return v, ok
			}
			switch name {
			case "launch-template-name":
				return []string{lt.Name}, true
			}
			return nil, false
		})
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			out.LaunchTemplates = append(out.LaunchTemplates, e.launchTemplateXML(lt, c.Account))
		}
	}
	for _, id := range ids {
		if lt, ok := get(e, launchTemplatesOf, id); !ok || lt.Owner != c.Account {
			return nil, core.Errf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
		}
	}
	for _, n := range names {
		if e.launchTemplateByName(c, n) == nil {
			return nil, core.Errf("InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.")
		}
	}
	return out, nil
}

// ---- CreateFleet ----

type xmlFleetLaunchTemplateSpec struct {
	LaunchTemplateID   string `xml:"launchTemplateId,omitempty"`
	LaunchTemplateName string `xml:"launchTemplateName,omitempty"`
	Version            string `xml:"version"`
}

type xmlFleetOverrides struct {
	InstanceType     string `xml:"instanceType,omitempty"`
	SubnetID         string `xml:"subnetId,omitempty"`
	AvailabilityZone string `xml:"availabilityZone,omitempty"`
}

type xmlLaunchTemplateAndOverrides struct {
	LaunchTemplateSpecification xmlFleetLaunchTemplateSpec `xml:"launchTemplateSpecification"`
	Overrides                   xmlFleetOverrides          `xml:"overrides"`
}

type xmlFleetError struct {
	LaunchTemplateAndOverrides xmlLaunchTemplateAndOverrides `xml:"launchTemplateAndOverrides"`
	Lifecycle                  string                        `xml:"lifecycle"`
	ErrorCode                  string                        `xml:"errorCode"`
	ErrorMessage               string                        `xml:"errorMessage"`
}

type xmlFleetInstances struct {
	LaunchTemplateAndOverrides xmlLaunchTemplateAndOverrides `xml:"launchTemplateAndOverrides"`
	Lifecycle                  string                        `xml:"lifecycle"`
	InstanceIDs                []string                      `xml:"instanceIds>item"`
	InstanceType               string                        `xml:"instanceType"`
}

type createFleetOutput struct {
	FleetID          string              `xml:"fleetId"`
	ErrorSet         []xmlFleetError     `xml:"errorSet>item"`
	FleetInstanceSet []xmlFleetInstances `xml:"fleetInstanceSet>item"`
}

// ec2CreateFleet serves fleets of type instant: it launches the target
// capacity at once from the launch template and its overrides, in order
// (emulator convention: the first override with capacity wins whatever the
// allocation strategy), and reports launch failures in errorSet, as AWS
// does for instant fleets, rather than failing the call.
func (e *view) ec2CreateFleet(c *core.Call, p ec2Params) (any, *core.APIError) {
	typ, err := oneOfValues(p, "Type", "maintain", "request", "instant")
	if err != nil {
		return nil, err
	}
	if typ = orDefault(typ, "maintain"); typ != "instant" {
		// Emulator limit: fleets that keep or request capacity over time
		// are not emulated; say so in the user's terms.
		how := "the fleet type"
		if p.str("Type") == "" {
			how = "the default fleet type when Type is not given"
		}
		return nil, core.Errf("UnsupportedOperation", "This emulator serves EC2 Fleets of type instant only; %s is %s (a fleet that keeps requesting capacity), which it does not emulate. Set Type to instant.", how, typ)
	}
	target, err := p.integer("TargetCapacitySpecification.TotalTargetCapacity", 0)
	if err != nil {
		return nil, err
	}
	if target < 1 {
		return nil, core.Errf("InvalidParameterValue", "TotalTargetCapacity must be at least 1.")
	}
	capacityType := orDefault(p.str("TargetCapacitySpecification.DefaultTargetCapacityType"), "on-demand")
	if capacityType != "spot" && capacityType != "on-demand" {
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter DefaultTargetCapacityType is invalid.", capacityType)
	}
	if _, err := oneOfValues(p, "SpotOptions.AllocationStrategy", "lowest-price", "diversified", "capacity-optimized",
		"capacity-optimized-prioritized", "price-capacity-optimized"); err != nil {
		return nil, err
	}
	configs := p.indices("LaunchTemplateConfigs")
	if len(configs) == 0 {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter LaunchTemplateConfigs")
	}
	specs, err := p.tagSpecs("fleet", "instance")
	if err != nil {
		return nil, err
	}
	fleet := &ec2Fleet{ID: e.newID("fleet"), Owner: c.Account, Region: c.Region, Type: typ, Created: e.clock.Now(), Principal: c.Principal, Instances: []string{}}
	out := createFleetOutput{FleetID: fleet.ID, ErrorSet: []xmlFleetError{}, FleetInstanceSet: []xmlFleetInstances{}}
	lifecycle := capacityType
	for _, n := range configs {
		pre := fmt.Sprintf("LaunchTemplateConfigs.%d.", n)
		lt, err := e.findLaunchTemplate(c, p, pre+"LaunchTemplateSpecification.")
		if err != nil {
			return nil, err
		}
		spec := xmlFleetLaunchTemplateSpec{LaunchTemplateID: p.str(pre + "LaunchTemplateSpecification.LaunchTemplateId"),
			LaunchTemplateName: p.str(pre + "LaunchTemplateSpecification.LaunchTemplateName"), Version: p.str(pre + "LaunchTemplateSpecification.Version")}
		if spec.Version == "" {
			// AWS: "You must specify a value, otherwise the request fails"
			// (the code and text are an emulator convention).
			return nil, core.Errf("MissingParameter", "The request must contain the parameter %sLaunchTemplateSpecification.Version: a launch template version number, $Latest or $Default.", pre)
		}
		if v := spec.Version; v != "1" && v != "$Latest" && v != "$Default" {
			return nil, core.Errf("InvalidLaunchTemplateVersion.NotFound", "The specified launch template version %s does not exist.", v)
		}
		overrides := p.indices(pre + "Overrides")
		if len(overrides) == 0 {
			overrides = []int{0}
		}
		for _, o := range overrides {
			if len(fleet.Instances) >= target {
				break
			}
			opre := fmt.Sprintf("%sOverrides.%d.", pre, o)
			ov := xmlFleetOverrides{InstanceType: p.str(opre + "InstanceType"), SubnetID: p.str(opre + "SubnetId"), AvailabilityZone: p.str(opre + "AvailabilityZone")}
			run := launchParams(lt, ov, capacityType, p.str(opre+"MaxPrice"), target-len(fleet.Instances))
			res, apiErr := e.ec2RunInstances(c, run)
			lto := xmlLaunchTemplateAndOverrides{LaunchTemplateSpecification: spec, Overrides: ov}
			if apiErr != nil {
				out.ErrorSet = append(out.ErrorSet, xmlFleetError{LaunchTemplateAndOverrides: lto, Lifecycle: lifecycle, ErrorCode: apiErr.Code, ErrorMessage: apiErr.Message})
				continue
			}
			r := res.(reservationXML)
			item := xmlFleetInstances{LaunchTemplateAndOverrides: lto, Lifecycle: lifecycle}
			for _, inst := range r.InstancesSet {
				item.InstanceIDs = append(item.InstanceIDs, inst.InstanceID)
				item.InstanceType = inst.InstanceType
				fleet.Instances = append(fleet.Instances, inst.InstanceID)
			}
			out.FleetInstanceSet = append(out.FleetInstanceSet, item)
		}
	}
	put(e, fleetsOf, fleet)
	if t := tagsFor(specs, "fleet"); len(t) > 0 {
		e.setTags(fleet.ID, c.Account, t)
	}
	c.Note("fleetId", fleet.ID)
	return out, nil
}

// launchParams turns a launch template and a fleet override into
// RunInstances parameters.
func launchParams(lt *ec2LaunchTemplate, ov xmlFleetOverrides, capacityType, maxPrice string, count int) ec2Params {
	v := map[string][]string{}
	for k, vals := range lt.Data {
		v[k] = vals
	}
	if ov.InstanceType != "" {
		v["InstanceType"] = []string{ov.InstanceType}
	}
	if ov.SubnetID != "" {
		if _, ok := v["NetworkInterface.1.DeviceIndex"]; ok {
			v["NetworkInterface.1.SubnetId"] = []string{ov.SubnetID}
		} else {
			v["SubnetId"] = []string{ov.SubnetID}
		}
	}
	if ov.AvailabilityZone != "" {
		v["Placement.AvailabilityZone"] = []string{ov.AvailabilityZone}
	}
	if capacityType == "spot" {
		v["InstanceMarketOptions.MarketType"] = []string{"spot"}
		if maxPrice != "" {
			v["InstanceMarketOptions.SpotOptions.MaxPrice"] = []string{maxPrice}
		}
	}
	v["MinCount"] = []string{"1"}
	v["MaxCount"] = []string{strconv.Itoa(count)}
	return ec2Params{v: v}
}

type deleteFleetsOutput struct {
	Successful []struct {
		FleetID string `xml:"fleetId"`
	} `xml:"successfulFleetDeletionSet>item"`
	Unsuccessful []xmlDeleteFleetError `xml:"unsuccessfulFleetDeletionSet>item"`
}

type xmlDeleteFleetError struct {
	Code    string `xml:"error>code"`
	Message string `xml:"error>message"`
	FleetID string `xml:"fleetId"`
}

// ec2DeleteFleets deletes fleets. An instant fleet must terminate its
// instances ("A deleted instant fleet with running instances is not
// supported"): asked not to, the fleet is reported in
// unsuccessfulFleetDeletionSet with fleetNotInDeletableState, one of
// DeleteFleetError's codes, and left as it is (emulator convention: AWS
// names neither the code nor the text for this case).
func (e *view) ec2DeleteFleets(c *core.Call, p ec2Params) (any, *core.APIError) {
	terminate, given, err := p.optBool("TerminateInstances")
	if err != nil {
		return nil, err
	}
	if !given {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter TerminateInstances")
	}
	out := deleteFleetsOutput{}
	for _, id := range p.list("FleetId") {
		f, ok := get(e, fleetsOf, id)
		if !ok || f.Owner != c.Account || f.Region != c.Region {
			return nil, core.Errf("InvalidFleetId.NotFound", "The fleet ID '%s' does not exist", id)
		}
		if f.Type == "instant" && !terminate {
			out.Unsuccessful = append(out.Unsuccessful, xmlDeleteFleetError{Code: "fleetNotInDeletableState", FleetID: id,
				Message: "NoTerminateInstances is not supported for instant fleets: a deleted instant fleet must terminate its instances. Set TerminateInstances to true."})
			continue
		}
		if terminate {
			for _, iid := range f.Instances {
				if inst, ok := get(e, instancesOf, iid); ok {
					e.refreshInstance(inst)
					if inst.State != "terminated" && inst.State != "shutting-down" {
						e.transition(inst, "shutting-down", "terminated", e.clock.Latency(core.LatencyInstanceTerm, 0, false))
					}
				}
			}
		}
		f.Deleted = true
		out.Successful = append(out.Successful, struct {
			FleetID string `xml:"fleetId"`
		}{id})
	}
	return out, nil
}

// ---- spot instance requests ----

// newSpotRequest records the spot request a spot launch fulfils.
func (e *view) newSpotRequest(c *core.Call, inst *ec2Instance, typ, interruption string) {
	sir := &ec2SpotRequest{ID: e.newID("sir"), Owner: c.Account, Region: c.Region, InstanceID: inst.ID, Created: e.clock.Now(), Principal: c.Principal}
	if typ == "persistent" {
		sir.Type = typ
	}
	if interruption != "terminate" {
		sir.Interruption = interruption
	}
	put(e, spotRequestsOf, sir)
	inst.SpotRequestID = sir.ID
	c.Note("spotInstanceRequestId."+inst.ID, sir.ID)
}

type xmlSpotStatus struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

// persistentSpot reports whether a spot instance's request is persistent.
func (e *view) persistentSpot(inst *ec2Instance) bool {
	r, ok := get(e, spotRequestsOf, inst.SpotRequestID)
	return ok && r.Type == "persistent"
}

type xmlSpotRequest struct {
	SpotInstanceRequestID        string        `xml:"spotInstanceRequestId"`
	State                        string        `xml:"state"`
	Status                       xmlSpotStatus `xml:"status"`
	Type                         string        `xml:"type"`
	InstanceInterruptionBehavior string        `xml:"instanceInterruptionBehavior"`
	InstanceID                   string        `xml:"instanceId"`
	CreateTime                   string        `xml:"createTime"`
	TagSet                       []xmlTag      `xml:"tagSet>item,omitempty"`
}

type describeSpotRequestsOutput struct {
	SpotInstanceRequestSet []xmlSpotRequest `xml:"spotInstanceRequestSet>item"`
}

// spotRequestXML derives the request's state from its instance's.
func (e *view) spotRequestXML(r *ec2SpotRequest, account string) xmlSpotRequest {
	x := xmlSpotRequest{SpotInstanceRequestID: r.ID, State: "active", Status: xmlSpotStatus{Code: "fulfilled", Message: "Your spot request is fulfilled."},
		Type: orDefault(r.Type, "one-time"), InstanceInterruptionBehavior: orDefault(r.Interruption, "terminate"),
		InstanceID: r.InstanceID, CreateTime: ec2Time(r.Created), TagSet: e.tagSet(r.ID, account)}
	inst, ok := get(e, instancesOf, r.InstanceID)
	if ok {
		e.refreshInstance(inst)
	}
	gone := !ok || inst.State == "terminated" || inst.State == "shutting-down"
	switch {
	case r.Cancelled:
		x.State, x.Status = "cancelled", xmlSpotStatus{Code: "request-canceled-and-instance-running", Message: "Spot Instance termination request was canceled."}
	case r.Type == "persistent" && gone:
		// A persistent request whose instance is terminated opens again
		// to launch another; the emulator launches none (an emulator
		// limit), so it stays open until cancelled.
		x.State, x.Status = "open", xmlSpotStatus{Code: "pending-evaluation", Message: "Your Spot request has been submitted for review, and is pending evaluation."}
	case r.Type == "persistent" && (inst.State == "stopped" || inst.State == "stopping"):
		x.State, x.Status = "disabled", xmlSpotStatus{Code: "instance-stopped-by-user", Message: "This Spot Instance was stopped by the user."}
	case gone:
		x.State, x.Status = "closed", xmlSpotStatus{Code: "instance-terminated-by-user", Message: "Spot Instance terminated due to user-initiated termination."}
	}
	return x
}

func (e *view) ec2DescribeSpotInstanceRequests(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids := p.list("SpotInstanceRequestId")
	for _, id := range ids {
		if r, ok := get(e, spotRequestsOf, id); !ok || r.Owner != c.Account || r.Region != c.Region {
			return nil, core.Errf("InvalidSpotInstanceRequestID.NotFound", "The spot instance request ID '%s' does not exist", id)
		}
	}
	out := describeSpotRequestsOutput{SpotInstanceRequestSet: []xmlSpotRequest{}}
	reqs := make([]*ec2SpotRequest, 0)
	for _, r := range e.own(c).SpotRequests {
		if len(ids) == 0 || contains(ids, r.ID) {
			reqs = append(reqs, r)
		}
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].ID < reqs[j].ID })
	for _, r := range reqs {
		out.SpotInstanceRequestSet = append(out.SpotInstanceRequestSet, e.spotRequestXML(r, c.Account))
	}
	return out, nil
}

type cancelSpotRequestsOutput struct {
	Cancelled []struct {
		SpotInstanceRequestID string `xml:"spotInstanceRequestId"`
		State                 string `xml:"state"`
	} `xml:"spotInstanceRequestSet>item"`
}

func (e *view) ec2CancelSpotInstanceRequests(c *core.Call, p ec2Params) (any, *core.APIError) {
	out := cancelSpotRequestsOutput{}
	for _, id := range p.list("SpotInstanceRequestId") {
		r, ok := get(e, spotRequestsOf, id)
		if !ok || r.Owner != c.Account || r.Region != c.Region {
			return nil, core.Errf("InvalidSpotInstanceRequestID.NotFound", "The spot instance request ID '%s' does not exist", id)
		}
		r.Cancelled = true
		out.Cancelled = append(out.Cancelled, struct {
			SpotInstanceRequestID string `xml:"spotInstanceRequestId"`
			State                 string `xml:"state"`
		}{id, "cancelled"})
	}
	return out, nil
}
