package launch

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// sockets are where dind images put the inner daemon's socket, seen from
// inside the container (docker:dind, docker:dind-rootless).
var sockets = []string{"/var/run/docker.sock", "/run/docker.sock", "/run/user/1000/docker.sock"}

// WaitReady waits until the inner daemon answers /_ping, on its unix
// socket (reached through /proc/PID/root of the container's init) or on
// TCP 2375/2376 of the container. When it never does within timeout, or
// the container ends, the error carries the container's last log lines.
func (c *Container) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ended := c.Wait(ctx)
	for {
		if c.answers(ctx) {
			return nil
		}
		select {
		case <-ended:
			if ctx.Err() == nil {
				return fmt.Errorf("the dind container %s ended before its daemon answered; its last output:\n%s", short(c.ID), c.Logs(context.Background(), 40))
			}
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
			continue
		}
		return fmt.Errorf("the inner daemon of %s did not answer within %s; its last output:\n%s", short(c.ID), timeout, c.Logs(context.Background(), 40))
	}
}

// answers pings the inner daemon once on every address it may listen on.
func (c *Container) answers(ctx context.Context) bool {
	for _, s := range sockets {
		if ping(ctx, "unix", "/proc/"+strconv.Itoa(c.PID)+"/root"+s) {
			return true
		}
	}
	info, err := c.api.ContainerInspect(ctx, c.ID)
	if err != nil || info.NetworkSettings == nil {
		return false
	}
	for _, ep := range info.NetworkSettings.Networks {
		for _, port := range []string{"2375", "2376"} {
			if ep.IPAddress != "" && dialable(ctx, net.JoinHostPort(ep.IPAddress, port)) {
				return true
			}
		}
	}
	return false
}

// ping sends GET /_ping over a unix socket and wants 200 OK.
func ping(ctx context.Context, network, addr string) bool {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// dialable tells whether a TCP port accepts connections (a TLS port cannot
// be pinged without its certificates).
func dialable(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
