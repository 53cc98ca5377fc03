package broker

import (
	"context"
	"log/slog"

	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// ImageAPI serves credbroker.v1.ImageService: may a tenant run an image?
type ImageAPI struct {
	credbrokerv1.UnimplementedImageServiceServer
	registry *Registry
	log      *slog.Logger
}

// NewImageAPI returns the ImageService over registry.
func NewImageAPI(registry *Registry, log *slog.Logger) *ImageAPI {
	return &ImageAPI{registry: registry, log: log}
}

// ValidateImage implements credbroker.v1.ImageService. A malformed reference
// is a verdict (INVALID_REFERENCE), not an error: "no" is the answer.
func (a *ImageAPI) ValidateImage(ctx context.Context, req *credbrokerv1.ValidateImageRequest) (*credbrokerv1.ValidateImageResponse, error) {
	if err := requireID("tenant_id", req.GetTenantId()); err != nil {
		return nil, err
	}
	if req.GetImage() == "" {
		return nil, invalidArgument("", FieldViolation{"image", "required"})
	}
	t, err := a.registry.Get(ctx, req.GetTenantId())
	if err != nil {
		return nil, toStatus(ctx, a.log, err, "")
	}
	v := ValidateImage(t, req.GetImage())
	return &credbrokerv1.ValidateImageResponse{Allowed: v.Allowed, Reason: imageReason(v.Reason), Message: v.Message}, nil
}

// ValidatePod implements credbroker.v1.ImageService.
func (a *ImageAPI) ValidatePod(ctx context.Context, req *credbrokerv1.ValidatePodRequest) (*credbrokerv1.ValidatePodResponse, error) {
	if err := requireID("tenant_id", req.GetTenantId()); err != nil {
		return nil, err
	}
	spec := req.GetPodSpec()
	if len(spec.GetContainers()) == 0 {
		return nil, invalidArgument("", FieldViolation{"pod_spec.containers", "required: a Pod has at least one container"})
	}
	t, err := a.registry.Get(ctx, req.GetTenantId())
	if err != nil {
		return nil, toStatus(ctx, a.log, err, "")
	}
	var containers []Container
	for _, list := range []struct {
		kind ContainerKind
		cs   []*credbrokerv1.Container
	}{{ContainerRegular, spec.GetContainers()}, {ContainerInit, spec.GetInitContainers()}, {ContainerEphemeral, spec.GetEphemeralContainers()}} {
		for _, c := range list.cs {
			containers = append(containers, Container{Name: c.GetName(), Kind: list.kind, Image: c.GetImage()})
		}
	}
	allowed, verdicts := ValidatePod(t, containers)
	resp := &credbrokerv1.ValidatePodResponse{Allowed: allowed}
	for _, v := range verdicts {
		resp.Containers = append(resp.Containers, &credbrokerv1.ContainerVerdict{
			Name:    v.Name,
			Kind:    credbrokerv1.ContainerKind(credbrokerv1.ContainerKind_value["CONTAINER_KIND_"+string(v.Kind)]),
			Image:   v.Image,
			Allowed: v.Allowed,
			Reason:  imageReason(v.Reason),
			Message: v.Message,
		})
	}
	return resp, nil
}

func imageReason(r ImageReason) credbrokerv1.ImageReason {
	return credbrokerv1.ImageReason(credbrokerv1.ImageReason_value["IMAGE_REASON_"+string(r)])
}
