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
	dir           string
	mu            sync.Mutex
	registrations []registration
	endpoints     map[string]*endpoint
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
	s.registrations = append(s.registrations, registration{
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

// wait blocks until ready (called with the lock held) returns true, or the timeout passes.
func (s *standin) wait(timeout time.Duration, ready func() bool) bool {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		ok := ready()
		changed := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-deadline:
			return false
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

func ids(arg string) []string {
	if arg == "-" || arg == "" {
		return []string{}
	}
	return strings.Split(arg, ",")
}

func milliseconds(arg string) (time.Duration, error) {
	ms, err := strconv.Atoi(arg)
	return time.Duration(ms) * time.Millisecond, err
}

func call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (s *standin) command(words []string) (interface{}, error) {
	usage := fmt.Errorf("bad command %q", strings.Join(words, " "))
	if len(words) == 0 {
		return nil, usage
	}
	switch words[0] {
	case "registrations":
		s.mu.Lock()
		defer s.mu.Unlock()
		return map[string]interface{}{"registrations": append([]registration{}, s.registrations...)}, nil
	case "wait-registered":
		if len(words) != 3 {
			return nil, usage
		}
		timeout, err := milliseconds(words[2])
		if err != nil {
			return nil, usage
		}
		if !s.wait(timeout, func() bool {
			ep := s.endpoints[words[1]]
			return ep != nil && ep.listedAt != 0
		}) {
			return nil, fmt.Errorf("%s did not register and list its devices within %v", words[1], timeout)
		}
		return map[string]bool{"ok": true}, nil
	case "devices":
		if len(words) != 2 {
			return nil, usage
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		ep := s.endpoints[words[1]]
		if ep == nil {
			return nil, fmt.Errorf("%s is not registered", words[1])
		}
		return map[string]interface{}{"devices": ep.devices, "at": ep.listedAt}, nil
	case "wait-health":
		if len(words) != 5 {
			return nil, usage
		}
		timeout, err := milliseconds(words[4])
		if err != nil {
			return nil, usage
		}
		var at int64
		if !s.wait(timeout, func() bool {
			ep := s.endpoints[words[1]]
			if ep == nil {
				return false
			}
			for _, d := range ep.devices {
				if d.ID == words[2] && d.Health == words[3] {
					at = ep.listedAt
					return true
				}
			}
			return false
		}) {
			return nil, fmt.Errorf("%s of %s was not reported %s within %v", words[2], words[1], words[3], timeout)
		}
		return map[string]interface{}{"ok": true, "at": at}, nil
	case "wait-devices":
		if len(words) != 4 {
			return nil, usage
		}
		count, err := strconv.Atoi(words[2])
		if err != nil {
			return nil, usage
		}
		timeout, err := milliseconds(words[3])
		if err != nil {
			return nil, usage
		}
		if !s.wait(timeout, func() bool {
			ep := s.endpoints[words[1]]
			return ep != nil && ep.listedAt != 0 && len(ep.devices) == count
		}) {
			return nil, fmt.Errorf("%s did not list %d devices within %v", words[1], count, timeout)
		}
		return map[string]bool{"ok": true}, nil
	case "options":
		if len(words) != 2 {
			return nil, usage
		}
		ep, err := s.endpoint(words[1])
		if err != nil {
			return nil, err
		}
		ctx, cancel := call()
		defer cancel()
		options, err := ep.client.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
		if err != nil {
			return nil, err
		}
		return map[string]bool{
			"pre_start_required":                  options.PreStartRequired,
			"get_preferred_allocation_available": options.GetPreferredAllocationAvailable,
		}, nil
	case "preferred":
		if len(words) != 5 {
			return nil, usage
		}
		size, err := strconv.Atoi(words[2])
		if err != nil {
			return nil, usage
		}
		ep, err := s.endpoint(words[1])
		if err != nil {
			return nil, err
		}
		ctx, cancel := call()
		defer cancel()
		response, err := ep.client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
			ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
				AvailableDeviceIDs:   ids(words[3]),
				MustIncludeDeviceIDs: ids(words[4]),
				AllocationSize:       int32(size),
			}},
		})
		if err != nil {
			return nil, err
		}
		if len(response.ContainerResponses) != 1 {
			return nil, fmt.Errorf("%d container responses for one request", len(response.ContainerResponses))
		}
		return map[string][]string{"device_ids": append([]string{}, response.ContainerResponses[0].DeviceIDs...)}, nil
	case "allocate":
		if len(words) != 3 {
			return nil, usage
		}
		ep, err := s.endpoint(words[1])
		if err != nil {
			return nil, err
		}
		ctx, cancel := call()
		defer cancel()
		response, err := ep.client.Allocate(ctx, &pluginapi.AllocateRequest{
			ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIDs: ids(words[2])}},
		})
		if err != nil {
			return nil, err
		}
		if len(response.ContainerResponses) != 1 {
			return nil, fmt.Errorf("%d container responses for one request", len(response.ContainerResponses))
		}
		r := response.ContainerResponses[0]
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
	case "bench-allocate":
		if len(words) != 4 {
			return nil, usage
		}
		n, err := strconv.Atoi(words[2])
		if err != nil || n < 1 {
			return nil, usage
		}
		ep, err := s.endpoint(words[1])
		if err != nil {
			return nil, err
		}
		request := &pluginapi.AllocateRequest{
			ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIDs: ids(words[3])}},
		}
		times := make([]int64, 0, n)
		for i := 0; i < n; i++ {
			ctx, cancel := call()
			start := time.Now()
			_, err := ep.client.Allocate(ctx, request)
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
	case "quit":
		return map[string]bool{"ok": true}, nil
	}
	return nil, usage
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
