// Package dockerd holds dindstore's knowledge of an inner dockerd's command
// line and image store: how to find its flags (IsDockerd, FlagValues), pin
// its storage driver (PinArgs, PinEnv), tell and decide between the graph
// driver and the containerd snapshotter image stores (ProbeEngine,
// RequestedStore, DecideStore, DriverFor, PinStore), and detect which one a
// data root holds (DetectStore). It runs no daemon; package handoff and
// cache apply its decisions.
package dockerd
