package csi

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// SocketPath reads a unix endpoint, "unix:///csi/csi.sock" or a plain
// absolute path.
func SocketPath(endpoint string) (string, error) {
	path := strings.TrimPrefix(endpoint, "unix://")
	if strings.Contains(path, "://") || !filepath.IsAbs(path) {
		return "", fmt.Errorf("endpoint %q: want unix:///absolute/path.sock", endpoint)
	}
	return filepath.Clean(path), nil
}

// Listen listens on a unix socket at path, replacing a stale socket (never
// any other kind of file).
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("listen on %s: it exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	return net.Listen("unix", path)
}

// Serve serves the driver's Identity and Node services at endpoint until
// ctx ends, then stops (in-flight calls get stopGrace to finish).
func Serve(ctx context.Context, endpoint string, d *Driver) error {
	path, err := SocketPath(endpoint)
	if err != nil {
		return err
	}
	l, err := Listen(path)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterNodeServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	return serveUntil(ctx, srv, l)
}

// stopGrace is how long in-flight calls may run once the server stops.
const stopGrace = 30 * time.Second

// serveUntil serves l until ctx ends or serving fails.
func serveUntil(ctx context.Context, srv *grpc.Server, l net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(stopGrace):
		srv.Stop()
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// logCalls logs the calls that change something, and every failure.
func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	switch {
	case err != nil:
		log.Printf("%s: %v (%s)", method, status.Convert(err).Message(), status.Code(err))
	case strings.HasPrefix(method, "NodePublish"), strings.HasPrefix(method, "NodeUnpublish"):
		log.Printf("%s: ok", method)
	}
	return resp, err
}
