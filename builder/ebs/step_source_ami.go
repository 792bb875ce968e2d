package ebs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/packerbuilderdata"
)

// stepSourceAMIInfo reports the source AMI and records the build's
// generated data (build.SourceAMI, build.KmsKeyArn, …).
type stepSourceAMIInfo struct{}

func (s *stepSourceAMIInfo) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	src := b.source
	detail(ui(state), fmt.Sprintf("Source AMI: %s (%s), owner %s, %s, root %s",
		aws.ToString(src.ImageId), aws.ToString(src.Name), aws.ToString(src.OwnerId), src.Architecture, aws.ToString(src.RootDeviceName)))
	gd := &packerbuilderdata.GeneratedData{State: state}
	gd.Put("SourceAMI", aws.ToString(src.ImageId))
	gd.Put("SourceAMIName", aws.ToString(src.Name))
	gd.Put("SourceAMIOwner", aws.ToString(src.OwnerId))
	gd.Put("SourceAMICreationDate", aws.ToString(src.CreationDate))
	gd.Put("BuildRegion", b.config.RawRegion)
	gd.Put("KmsKeyArn", b.keyARN)
	return multistep.ActionContinue
}

func (s *stepSourceAMIInfo) Cleanup(multistep.StateBag) {}
