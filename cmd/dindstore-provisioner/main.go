// Command dindstore-provisioner provisions a node's claims of the dindstore
// StorageClass through the CSI plugin beside it, and publishes the node's
// storage capacity (package provision). It runs as a container of the
// plugin's DaemonSet, in place of external-provisioner's --node-deployment.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/provision"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

func main() {
	app := &cli.App{
		Name:  "dindstore-provisioner",
		Usage: "provision this node's dindstore claims through the CSI plugin, and publish its capacity",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "csi-address", Value: "/csi/csi.sock", Usage: "the plugin's CSI socket"},
			&cli.StringFlag{Name: "node-name", EnvVars: []string{"NODE_NAME"}, Usage: "this node (the plugin's --node-id)"},
			&cli.StringFlag{Name: "namespace", EnvVars: []string{"NAMESPACE"}, Value: "dindstore", Usage: "where the CSIStorageCapacity objects live"},
			&cli.StringFlag{Name: "kubeconfig", Usage: "a kubeconfig (default: the pod's service account)"},
			&cli.DurationFlag{Name: "capacity-interval", Value: time.Minute, Usage: "how often the node's capacity is published"},
		},
		Action: run,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "dindstore-provisioner:", err)
		os.Exit(1)
	}
}

// run connects to the plugin and the API, then provisions and publishes
// until SIGTERM or SIGINT.
func run(c *cli.Context) error {
	node := c.String("node-name")
	if node == "" {
		return fmt.Errorf("--node-name (or NODE_NAME) is required: the node this provisioner serves")
	}
	conn, err := grpc.NewClient("unix://"+c.String("csi-address"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	info, err := waitPlugin(ctx, csipb.NewIdentityClient(conn))
	if err != nil {
		return err
	}
	cfg, err := kubeConfig(c.String("kubeconfig"))
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	snaps, err := snapclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctrl := csipb.NewControllerClient(conn)
	driver := info.GetName()
	capacity := &provision.Capacity{CSI: ctrl, Client: client, Driver: driver, Node: node,
		Namespace: c.String("namespace"), Owner: nodeOwner(ctx, client, node)}
	prov := &provision.Provisioner{CSI: ctrl, Driver: driver, Node: node, Client: client,
		Snapshots: snaps, Changed: capacity.Changed}
	withdrawn := make(chan struct{})
	go func() { capacity.Run(ctx, c.Duration("capacity-interval"), log.Printf); close(withdrawn) }()
	log.Printf("provisioning %s claims on node %s", driver, node)
	controller.NewProvisionController(ctx, client, driver, prov, controller.LeaderElection(false),
		controller.ProvisionTimeout(2*time.Minute), controller.DeletionTimeout(2*time.Minute)).Run(ctx)
	<-withdrawn
	return nil
}

// nodeOwner is the owner reference of the Node (its capacity objects go
// with it), or nil when it cannot be read.
func nodeOwner(ctx context.Context, client kubernetes.Interface, name string) *metav1.OwnerReference {
	n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		log.Printf("node %s: %v (its capacity objects get no owner)", name, err)
		return nil
	}
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}
}

// waitPlugin waits for the plugin to answer, and says who it is.
func waitPlugin(ctx context.Context, id csipb.IdentityClient) (*csipb.GetPluginInfoResponse, error) {
	for {
		info, err := id.GetPluginInfo(ctx, &csipb.GetPluginInfoRequest{})
		if err == nil {
			return info, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the CSI plugin did not answer: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// kubeConfig is the API's config from a kubeconfig, or the pod's service
// account.
func kubeConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes API: %w", err)
	}
	return cfg, nil
}
