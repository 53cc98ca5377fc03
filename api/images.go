package api

import (
	"context"
	"log/slog"

	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// ImageAPI serves credbroker.v1.ImageService: may a tenant run an image?
type ImageAPI struct {
	credbrokerv1.UnimplementedImageServiceServer
	registry *broker.Tenants
	log      *slog.Logger
}

// NewImageAPI returns the ImageService over registry.
func NewImageAPI(registry *broker.Tenants, log *slog.Logger) *ImageAPI {
	return &ImageAPI{registry: registry, log: log}
}

// ValidateImage implements credbroker.v1.ImageService. A malformed reference
// is a verdict (INVALID_REFERENCE), not an error: "no" is the answer.
func (a *ImageAPI) ValidateImage(ctx context.Context, req *credbrokerv1.ValidateImageRequest) (*credbrokerv1.ValidateImageResponse, error) {
	if err := requireID("tenant_id", req.GetTenantId()); err != nil {
		return nil, err
	}
	if req.GetImage() == "" {
		return nil, invalidArgument("", broker.FieldViolation{Field: "image", Description: "required"})
	}
	t, err := a.registry.Lookup(ctx, req.GetTenantId())
	if err != nil {
		return nil, toStatus(ctx, a.log, err, "")
	}
	v := a.registry.ImageRules().Validate(t, req.GetImage())
	return &credbrokerv1.ValidateImageResponse{Allowed: v.Allowed, Reason: imageReasons.proto(v.Reason), Message: v.Message}, nil
}

// ValidatePod implements credbroker.v1.ImageService.
func (a *ImageAPI) ValidatePod(ctx context.Context, req *credbrokerv1.ValidatePodRequest) (*credbrokerv1.ValidatePodResponse, error) {
	if err := requireID("tenant_id", req.GetTenantId()); err != nil {
		return nil, err
	}
	spec := req.GetPodSpec()
	if len(spec.GetContainers()) == 0 {
		return nil, invalidArgument("", broker.FieldViolation{Field: "pod_spec.containers", Description: "required: a Pod has at least one container"})
	}
	t, err := a.registry.Lookup(ctx, req.GetTenantId())
	if err != nil {
		return nil, toStatus(ctx, a.log, err, "")
	}
	var containers []broker.Container
	for _, list := range []struct {
		kind broker.ContainerKind
		cs   []*credbrokerv1.Container
	}{{broker.ContainerRegular, spec.GetContainers()}, {broker.ContainerInit, spec.GetInitContainers()}, {broker.ContainerEphemeral, spec.GetEphemeralContainers()}} {
		for _, c := range list.cs {
			containers = append(containers, broker.Container{Name: c.GetName(), Kind: list.kind, Image: c.GetImage()})
		}
	}
	allowed, verdicts := broker.ValidatePod(a.registry.ImageRules(), t, containers)
	resp := &credbrokerv1.ValidatePodResponse{Allowed: allowed}
	for _, v := range verdicts {
		resp.Containers = append(resp.Containers, &credbrokerv1.ContainerVerdict{
			Name:    v.Name,
			Kind:    containerKinds.proto(v.Kind),
			Image:   v.Image,
			Allowed: v.Allowed,
			Reason:  imageReasons.proto(v.Reason),
			Message: v.Message,
		})
	}
	return resp, nil
}
