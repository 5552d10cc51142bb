// Command kubelet-standin plays the kubelet's device manager for the device plugin's end-to-end
// tests, with the official API (k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1) and grpc-go.
//
// Like the kubelet it empties the device plugin directory at start (removing the plugins'
// sockets), serves the Registration service on kubelet.sock, and for each registered resource
// dials the plugin's socket, asks GetDevicePluginOptions and follows ListAndWatch. The test
// drives it through standard input, one command per line, and reads one JSON object per command
// on standard output:
//
//	registrations                       every registration received, in order
//	wait-registered RESOURCE MS         until RESOURCE is registered and has sent a device list
//	devices RESOURCE                    the last device list of RESOURCE, and when it arrived
//	wait-health RESOURCE ID HEALTH MS   until device ID of RESOURCE is reported with HEALTH
//	wait-devices RESOURCE COUNT MS      until RESOURCE lists COUNT devices
//	options RESOURCE                    GetDevicePluginOptions of RESOURCE's plugin
//	preferred RESOURCE SIZE AVAIL MUST  GetPreferredAllocation (AVAIL, MUST: comma-separated or -)
//	allocate RESOURCE IDS               Allocate of IDS (comma-separated) for one container
//	bench-allocate RESOURCE N IDS       N Allocate round trips of IDS: p50 and p99 in microseconds
//	quit                                stop (kubelet.sock is removed)
//
// Failures are {"error": "..."}. Timestamps are Unix nanoseconds (CLOCK_REALTIME), so the test
// can measure from an event it caused to the list that reports it.
//
// Build offline in GOPATH mode (tests/go/build-kubelet-standin does it inside the engine root):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode CGO_ENABLED=0 go build -o OUT .
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// registration is one Register call as received.
type registration struct {
	Resource string `json:"resource"`
	Endpoint string `json:"endpoint"`
	Version  string `json:"version"`
	// Whether the plugin said it implements GetPreferredAllocation.
	Preferred bool  `json:"preferred"`
	At        int64 `json:"at"`
}

type device struct {
	ID     string  `json:"id"`
	Health string  `json:"health"`
	Numa   []int64 `json:"numa"`
}

// endpoint is the connection to one resource's plugin.
type endpoint struct {
	client  pluginapi.DevicePluginClient
	conn    *grpc.ClientConn
	devices []device
	// When the last list arrived; 0 before the first.
	listedAt int64
	cancel   context.CancelFunc
}

type standin struct {
	// Forward compatibility of the generated service interface.
	pluginapi.UnimplementedRegistrationServer
	dir string
	mu  sync.Mutex
	// Every registration received, in order.
	received  []registration
	endpoints map[string]*endpoint
	// Closed and replaced whenever something changes, to wake waiters.
	changed chan struct{}
}

func (s *standin) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Register is the kubelet's Registration service.
func (s *standin) Register(ctx context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if r.Version != pluginapi.Version {
		return nil, fmt.Errorf("unsupported API version %q (want %q)", r.Version, pluginapi.Version)
	}
	if !strings.Contains(r.ResourceName, "/") {
		return nil, fmt.Errorf("resource name %q has no domain", r.ResourceName)
	}
	preferred := r.Options != nil && r.Options.GetPreferredAllocationAvailable
	s.mu.Lock()
	s.received = append(s.received, registration{
		Resource: r.ResourceName, Endpoint: r.Endpoint, Version: r.Version,
		Preferred: preferred, At: time.Now().UnixNano(),
	})
	s.notify()
	s.mu.Unlock()
	// As the kubelet does: connect to the plugin after answering.
	go s.connect(r.ResourceName, filepath.Join(s.dir, r.Endpoint))
	return &pluginapi.Empty{}, nil
}

func (s *standin) connect(resource, socket string) {
	conn, err := grpc.Dial("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-standin: cannot dial %s: %v\n", socket, err)
		return
	}
	client := pluginapi.NewDevicePluginClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	ep := &endpoint{client: client, conn: conn, cancel: cancel}
	s.mu.Lock()
	if old := s.endpoints[resource]; old != nil {
		old.cancel()
		old.conn.Close()
	}
	s.endpoints[resource] = ep
	s.mu.Unlock()

	if _, err := client.GetDevicePluginOptions(ctx, &pluginapi.Empty{}); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-standin: GetDevicePluginOptions of %s: %v\n", resource, err)
		return
	}
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-standin: ListAndWatch of %s: %v\n", resource, err)
		return
	}
	for {
		response, err := stream.Recv()
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubelet-standin: ListAndWatch of %s ended: %v\n", resource, err)
			return
		}
		now := time.Now().UnixNano()
		devices := make([]device, 0, len(response.Devices))
		for _, d := range response.Devices {
			numa := []int64{}
			if d.Topology != nil {
				for _, n := range d.Topology.Nodes {
					numa = append(numa, n.ID)
				}
			}
			devices = append(devices, device{ID: d.ID, Health: d.Health, Numa: numa})
		}
		s.mu.Lock()
		if s.endpoints[resource] == ep {
			ep.devices = devices
			ep.listedAt = now
			s.notify()
		}
		s.mu.Unlock()
	}
}

// errUsage is the error of an argument that does not parse: the command is reported as bad.
var errUsage = errors.New("bad usage")

// done is the answer of a command that has nothing else to say.
var done = map[string]bool{"ok": true}

// A command: how many arguments follow its name, and what it does with them.
type command struct {
	args int
	run  func(s *standin, args []string) (interface{}, error)
}

var commands = map[string]command{
	"registrations":   {0, (*standin).registrations},
	"wait-registered": {2, (*standin).waitRegistered},
	"devices":         {1, (*standin).devices},
	"wait-health":     {4, (*standin).waitHealth},
	"wait-devices":    {3, (*standin).waitDevices},
	"options":         {1, onPlugin(options)},
	"preferred":       {4, onPlugin(preferred)},
	"allocate":        {2, onPlugin(allocate)},
	"bench-allocate":  {3, onPlugin(benchAllocate)},
	"quit":            {0, func(*standin, []string) (interface{}, error) { return done, nil }},
}

func (s *standin) command(words []string) (interface{}, error) {
	if len(words) > 0 {
		if c, known := commands[words[0]]; known && len(words) == 1+c.args {
			result, err := c.run(s, words[1:])
			if err != errUsage {
				return result, err
			}
		}
	}
	return nil, fmt.Errorf("bad command %q", strings.Join(words, " "))
}

// number parses a count argument.
func number(arg string) (int, error) {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return 0, errUsage
	}
	return n, nil
}

// ids parses a comma-separated list of device ids, "-" for none.
func ids(arg string) []string {
	if arg == "-" || arg == "" {
		return []string{}
	}
	return strings.Split(arg, ",")
}

// wait blocks until ready (called with the lock held) returns true, or the milliseconds in
// timeout pass: then the error says what did not happen within them.
func (s *standin) wait(timeout string, what string, ready func() bool) error {
	ms, err := number(timeout)
	if err != nil {
		return err
	}
	limit := time.Duration(ms) * time.Millisecond
	deadline := time.After(limit)
	for {
		s.mu.Lock()
		ok := ready()
		changed := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-deadline:
			return fmt.Errorf("%s within %v", what, limit)
		}
	}
}

func (s *standin) endpoint(resource string) (*endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ep := s.endpoints[resource]
	if ep == nil {
		return nil, fmt.Errorf("%s is not registered", resource)
	}
	return ep, nil
}

func (s *standin) registrations(_ []string) (interface{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]interface{}{"registrations": append([]registration{}, s.received...)}, nil
}

func (s *standin) waitRegistered(args []string) (interface{}, error) {
	resource := args[0]
	if err := s.wait(args[1], resource+" did not register and list its devices", func() bool {
		ep := s.endpoints[resource]
		return ep != nil && ep.listedAt != 0
	}); err != nil {
		return nil, err
	}
	return done, nil
}

func (s *standin) devices(args []string) (interface{}, error) {
	ep, err := s.endpoint(args[0])
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]interface{}{"devices": ep.devices, "at": ep.listedAt}, nil
}

func (s *standin) waitHealth(args []string) (interface{}, error) {
	resource, id, health := args[0], args[1], args[2]
	var at int64
	if err := s.wait(args[3], fmt.Sprintf("%s of %s was not reported %s", id, resource, health), func() bool {
		ep := s.endpoints[resource]
		if ep == nil {
			return false
		}
		for _, d := range ep.devices {
			if d.ID == id && d.Health == health {
				at = ep.listedAt
				return true
			}
		}
		return false
	}); err != nil {
		return nil, err
	}
	return map[string]interface{}{"ok": true, "at": at}, nil
}

func (s *standin) waitDevices(args []string) (interface{}, error) {
	resource := args[0]
	count, err := number(args[1])
	if err != nil {
		return nil, err
	}
	if err := s.wait(args[2], fmt.Sprintf("%s did not list %d devices", resource, count), func() bool {
		ep := s.endpoints[resource]
		return ep != nil && ep.listedAt != 0 && len(ep.devices) == count
	}); err != nil {
		return nil, err
	}
	return done, nil
}

// call is the context of one call to a plugin.
func call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// onPlugin makes a command of a call to the plugin of the resource named by the first argument:
// it gets the plugin's client, the context of one call and the other arguments.
func onPlugin(run func(ctx context.Context, plugin pluginapi.DevicePluginClient, args []string) (interface{}, error)) func(*standin, []string) (interface{}, error) {
	return func(s *standin, args []string) (interface{}, error) {
		ep, err := s.endpoint(args[0])
		if err != nil {
			return nil, err
		}
		ctx, cancel := call()
		defer cancel()
		return run(ctx, ep.client, args[1:])
	}
}

// onlyContainer is a plugin's answer for the one container asked about.
func onlyContainer[R any](responses []R, err error) (R, error) {
	var none R
	if err != nil {
		return none, err
	}
	if len(responses) != 1 {
		return none, fmt.Errorf("%d container responses for one request", len(responses))
	}
	return responses[0], nil
}

func options(ctx context.Context, plugin pluginapi.DevicePluginClient, _ []string) (interface{}, error) {
	options, err := plugin.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	if err != nil {
		return nil, err
	}
	return map[string]bool{
		"pre_start_required":                 options.PreStartRequired,
		"get_preferred_allocation_available": options.GetPreferredAllocationAvailable,
	}, nil
}

func preferred(ctx context.Context, plugin pluginapi.DevicePluginClient, args []string) (interface{}, error) {
	size, err := number(args[0])
	if err != nil {
		return nil, err
	}
	response, err := plugin.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
		ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs:   ids(args[1]),
			MustIncludeDeviceIDs: ids(args[2]),
			AllocationSize:       int32(size),
		}},
	})
	container, err := onlyContainer(response.GetContainerResponses(), err)
	if err != nil {
		return nil, err
	}
	return map[string][]string{"device_ids": append([]string{}, container.DeviceIDs...)}, nil
}

// allocation is an Allocate request of one container for the devices listed in arg.
func allocation(arg string) *pluginapi.AllocateRequest {
	return &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIDs: ids(arg)}},
	}
}

func allocate(ctx context.Context, plugin pluginapi.DevicePluginClient, args []string) (interface{}, error) {
	response, err := plugin.Allocate(ctx, allocation(args[0]))
	r, err := onlyContainer(response.GetContainerResponses(), err)
	if err != nil {
		return nil, err
	}
	cdi := []string{}
	for _, d := range r.CDIDevices {
		cdi = append(cdi, d.Name)
	}
	nodes := []map[string]string{}
	for _, d := range r.Devices {
		nodes = append(nodes, map[string]string{
			"container_path": d.ContainerPath, "host_path": d.HostPath, "permissions": d.Permissions,
		})
	}
	annotations := r.Annotations
	if annotations == nil {
		annotations = map[string]string{}
	}
	envs := r.Envs
	if envs == nil {
		envs = map[string]string{}
	}
	return map[string]interface{}{
		"cdi_devices": cdi, "devices": nodes, "annotations": annotations, "envs": envs,
		"mounts": len(r.Mounts),
	}, nil
}

// benchAllocate times its round trips itself, each with the context of one call.
func benchAllocate(_ context.Context, plugin pluginapi.DevicePluginClient, args []string) (interface{}, error) {
	n, err := number(args[0])
	if err != nil || n < 1 {
		return nil, errUsage
	}
	request := allocation(args[1])
	times := make([]int64, 0, n)
	for i := 0; i < n; i++ {
		ctx, cancel := call()
		start := time.Now()
		_, err := plugin.Allocate(ctx, request)
		elapsed := time.Since(start)
		cancel()
		if err != nil {
			return nil, err
		}
		times = append(times, elapsed.Microseconds())
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	percentile := func(p int) int64 { return times[(len(times)-1)*p/100] }
	return map[string]int64{"n": int64(n), "p50_us": percentile(50), "p99_us": percentile(99)}, nil
}

// emptyDir removes the directory's entries, as the kubelet's device manager does at start.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if err := os.RemoveAll(filepath.Join(dir, entry.Name())); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	dir := flag.String("dir", pluginapi.DevicePluginPath, "the device plugin directory")
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-standin: %v\n", err)
		os.Exit(2)
	}
	if err := emptyDir(*dir); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-standin: cannot empty %s: %v\n", *dir, err)
		os.Exit(2)
	}
	// pluginapi.KubeletSocket is the full default path; the socket's name is its last element.
	socket := filepath.Join(*dir, filepath.Base(pluginapi.KubeletSocket))
	listener, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-standin: cannot listen on %s: %v\n", socket, err)
		os.Exit(2)
	}
	s := &standin{dir: *dir, endpoints: map[string]*endpoint{}, changed: make(chan struct{})}
	server := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(server, s)
	go server.Serve(listener)

	out := json.NewEncoder(os.Stdout)
	fmt.Println(`{"ready": true}`)
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		words := strings.Fields(lines.Text())
		result, err := s.command(words)
		if err != nil {
			result = map[string]string{"error": err.Error()}
		}
		out.Encode(result)
		if len(words) > 0 && words[0] == "quit" {
			break
		}
	}
	server.Stop()
	os.Remove(socket)
}
