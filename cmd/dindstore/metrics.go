package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/dindstore/dindstore/metrics"
	"github.com/urfave/cli/v2"
)

var metricsCommand = &cli.Command{
	Name:  "metrics",
	Usage: "write Prometheus metrics once (for node_exporter's textfile collector) or to stdout",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "textfile", Usage: "write atomically to this .prom file instead of stdout"},
	},
	Action: func(c *cli.Context) error {
		root, err := openRoot(c, false)
		if err != nil {
			return err
		}
		if path := c.String("textfile"); path != "" {
			return metrics.WriteTextfile(root, path)
		}
		return metrics.WriteText(root, c.App.Writer)
	},
}

var serveCommand = &cli.Command{
	Name:  "serve",
	Usage: "serve Prometheus metrics on /metrics until SIGINT or SIGTERM",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "metrics-addr", Value: "127.0.0.1:9477", Usage: "address to listen on"},
	},
	Action: func(c *cli.Context) error {
		root, err := openRoot(c, false)
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", c.String("metrics-addr"))
		if err != nil {
			return fmt.Errorf("listen on %s: %w", c.String("metrics-addr"), err)
		}
		fmt.Fprintf(c.App.ErrWriter, "dindstore: serving metrics on http://%s/metrics\n", l.Addr())
		ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return metrics.Serve(ctx, root, l)
	},
}
