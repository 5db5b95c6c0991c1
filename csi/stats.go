package csi

import (
	"context"
	"path/filepath"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// volumeCondition is the wire value of the node capability CSI 1.13
// removed (VOLUME_CONDITION), which kubelets built on earlier specs read
// to ask NodeGetVolumeStats for a volume's condition.
const volumeCondition csi.NodeServiceCapability_RPC_Type = 4

// NodeGetVolumeStats reports a published volume's bytes and inodes, and
// its condition (abnormal when its filesystem lost writes or counted
// errors). A volume not published at volume_path is NOT_FOUND.
func (d *Driver) NodeGetVolumeStats(_ context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	if req.GetVolumeId() != "" && req.GetVolumePath() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume path missing")
	}
	p, err := d.published(req.GetVolumeId(), req.GetVolumePath())
	if err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p.Target, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", p.Target, err)
	}
	bs := int64(st.Bsize)
	resp := &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs,
			Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree),
			Used: int64(st.Files - st.Ffree)},
	}}
	setLegacyCondition(resp, p.health())
	return resp, nil
}

// NodeGetVolumeHealth reports a published volume's health: DATA_LOSS when
// its filesystem lost writes or counted errors.
func (d *Driver) NodeGetVolumeHealth(_ context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	p, err := d.published(req.GetVolumeId(), req.GetVolumePublishPath())
	if err != nil {
		return nil, err
	}
	h := &csi.VolumeHealth{VolumeId: p.VolumeID}
	if err := p.health(); err != nil {
		h.HealthStatuses = []*csi.VolumeHealth_VolumeHealthEntry{{
			Status: csi.VolumeHealthErrorType_DATA_LOSS, Reason: "damaged", Message: err.Error()}}
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// published finds the volume's publication at path ("" for any).
func (d *Driver) published(volumeID, path string) (*publication, error) {
	if volumeID == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id missing")
	}
	p := d.lookup(volumeID)
	switch {
	case p == nil:
		return nil, status.Errorf(codes.NotFound, "volume %s is not published on this node", volumeID)
	case path != "" && filepath.Clean(path) != filepath.Clean(p.Target):
		return nil, status.Errorf(codes.NotFound, "volume %s is published at %s, not at %s", volumeID, p.Target, path)
	}
	return p, nil
}

// setLegacyCondition adds the volume_condition field (2) that CSI 1.13
// removed from NodeGetVolumeStatsResponse, for kubelets built on earlier
// specs: VolumeCondition{abnormal = 1, message = 2}.
func setLegacyCondition(resp *csi.NodeGetVolumeStatsResponse, problem error) {
	var cond []byte
	msg := "healthy"
	if problem != nil {
		cond = protowire.AppendTag(cond, 1, protowire.VarintType)
		cond = protowire.AppendVarint(cond, 1)
		msg = problem.Error()
	}
	cond = protowire.AppendTag(cond, 2, protowire.BytesType)
	cond = protowire.AppendString(cond, msg)
	var field []byte
	field = protowire.AppendTag(field, 2, protowire.BytesType)
	field = protowire.AppendBytes(field, cond)
	resp.ProtoReflect().SetUnknown(field)
}
