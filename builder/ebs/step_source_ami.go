package ebs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/packerbuilderdata"
)

// stepSourceAMIInfo reports the source AMI, records the build's generated
// data (build.SourceAMI, build.KmsKeyArn, …) and renders the tags and the
// description with it, as amazon-ebs does.
type stepSourceAMIInfo struct{}

func (s *stepSourceAMIInfo) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	src := b.source
	detail(ui(state), fmt.Sprintf("Source AMI: %s (%s), owner %s, %s, root %s",
		aws.ToString(src.ImageId), aws.ToString(src.Name), aws.ToString(src.OwnerId), src.Architecture, aws.ToString(src.RootDeviceName)))
	b.info = newBuildInfo(b.config.RawRegion, src)
	gd := &packerbuilderdata.GeneratedData{State: state}
	gd.Put("SourceAMI", b.info.SourceAMI)
	gd.Put("SourceAMIName", b.info.SourceAMIName)
	gd.Put("SourceAMIOwner", b.info.SourceAMIOwner)
	gd.Put("SourceAMIOwnerName", b.info.SourceAMIOwnerName)
	gd.Put("SourceAMICreationDate", b.info.SourceAMICreationDate)
	gd.Put("BuildRegion", b.config.RawRegion)
	gd.Put("KmsKeyArn", b.keyARN)
	tags, err := b.config.render(b.info)
	if err != nil {
		return halt(state, err)
	}
	b.tags = tags
	return multistep.ActionContinue
}

func (s *stepSourceAMIInfo) Cleanup(multistep.StateBag) {}
