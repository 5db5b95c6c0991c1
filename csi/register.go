package csi

import (
	"context"
	"fmt"
	"log"
	"path/filepath"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// DefaultRegistrationDir is where the kubelet's plugin watcher looks for
// plugins' registration sockets.
const DefaultRegistrationDir = "/var/lib/kubelet/plugins_registry"

// registration answers the kubelet's plugin watcher, as the
// node-driver-registrar sidecar does: the plugin's name, and where the
// kubelet reaches its CSI socket.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
}

// GetInfo tells the kubelet what the plugin is and where its socket is.
func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: r.name, Endpoint: r.endpoint,
		SupportedVersions: []string{"1.0.0"}}, nil
}

// NotifyRegistrationStatus logs the kubelet's answer.
func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.PluginRegistered {
		log.Printf("registered with the kubelet as %s", r.name)
	} else {
		log.Printf("the kubelet refused the registration of %s: %s", r.name, s.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// Register serves the registration of plugin name, whose CSI socket the
// kubelet reaches at kubeletSocket, from a socket in dir (the kubelet's
// plugins_registry) until ctx ends.
func Register(ctx context.Context, dir, name, kubeletSocket string) error {
	if !filepath.IsAbs(dir) || !filepath.IsAbs(kubeletSocket) {
		return fmt.Errorf("registration: %q and %q must be absolute paths", dir, kubeletSocket)
	}
	l, err := Listen(filepath.Join(dir, name+"-reg.sock"))
	if err != nil {
		return fmt.Errorf("registration: %w", err)
	}
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, &registration{name: name, endpoint: kubeletSocket})
	return serveUntil(ctx, srv, l)
}
