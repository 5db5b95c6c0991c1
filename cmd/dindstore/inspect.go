package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/urfave/cli/v2"
)

var inspectCommand = &cli.Command{
	Name:      "inspect",
	Usage:     "show a cache's record, loop device, mounts, holder, driver and inner daemon (JSON)",
	ArgsUsage: "KEY",
	Action: func(c *cli.Context) error {
		key, root, err := keyAndRoot(c)
		if err != nil {
			return err
		}
		in, err := root.Inspect(c.Context, key)
		if err != nil {
			return err
		}
		return writeJSON(c.App.Writer, inspectJSON{Inspection: in, SystemDF: innerSystemDF(c.Context, in.Daemons)})
	},
}

// inspectJSON adds the inner daemon's own view to an inspection.
type inspectJSON struct {
	*cache.Inspection
	// SystemDF is `docker system df` as the inner daemon answers it.
	SystemDF string `json:"inner_docker_system_df,omitempty"`
}

// innerSystemDF asks the first inner daemon with a unix socket for
// `docker system df`, through the docker CLI; empty when none answers.
func innerSystemDF(ctx context.Context, daemons []cache.Daemon) string {
	for _, d := range daemons {
		for _, h := range d.Hosts {
			if !strings.HasPrefix(h, "unix://") {
				continue
			}
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			out, err := exec.CommandContext(ctx, "docker", "-H", h, "system", "df").CombinedOutput()
			cancel()
			if err != nil {
				return fmt.Sprintf("docker -H %s system df: %v: %s", h, err, strings.TrimSpace(string(out)))
			}
			return string(out)
		}
	}
	return ""
}

var trimCommand = &cli.Command{
	Name:      "trim",
	Usage:     "give the host back the space freed inside a loop cache (FITRIM through its mount)",
	ArgsUsage: "KEY",
	Action: func(c *cli.Context) error {
		key, root, err := keyAndRoot(c)
		if err != nil {
			return err
		}
		res, err := root.Trim(c.Context, key)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s trimmed: %s allocated on the host before, %s after\n",
			key, human(res.AllocatedBefore), human(res.AllocatedAfter))
		return err
	},
}
