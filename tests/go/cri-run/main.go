// Command cri-run runs one command in a container through the Kubernetes Container Runtime
// Interface, with the CRI client the kubelet uses (k8s.io/cri-client), the way a kubelet would:
// it creates a pod sandbox (host network), creates and starts a container in it that sleeps,
// runs COMMAND in that container (ExecSync), prints the command's stdout and stderr, removes the
// container and the sandbox, and exits with the command's exit status.
//
// Usage:
//
//	cri-run -endpoint unix:///run/containerd/containerd.sock -image NAME
//	    [-runtime-handler NAME] [-cdi-device vendor/class=name]... [-annotation KEY=VALUE]...
//	    [-env KEY=VALUE]... [-run-as-user UID] [-run-as-group GID] [-timeout 2m] -- COMMAND...
//
// -cdi-device fills ContainerConfig.CDIDevices (what a device plugin's Allocate returns as
// CDIDevices); -annotation sets container annotations (for example cdi.k8s.io/... device
// requests); -runtime-handler selects the runtime for the sandbox (a RuntimeClass handler).
// A CRI call that fails prints "cri-run: <step>: <error>" and exits 1.
//
// Build offline in the sid engine root's GOPATH:
// GO111MODULE=off GOPATH=<root>/usr/share/gocode CGO_ENABLED=0 go build -o DIR/cri-run .
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	cri "k8s.io/cri-client/pkg"
	utilexec "k8s.io/utils/exec"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func fail(step string, err error) {
	fmt.Fprintf(os.Stderr, "cri-run: %s: %v\n", step, err)
	os.Exit(1)
}

// keyValues splits KEY=VALUE entries.
func keyValues(flagName string, entries []string) map[string]string {
	out := map[string]string{}
	for _, e := range entries {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			fail("arguments", fmt.Errorf("-%s %q: want KEY=VALUE", flagName, e))
		}
		out[k] = v
	}
	return out
}

// optionalID parses a -run-as-user/-run-as-group value ("" means unset).
func optionalID(flagName, value string) *runtimeapi.Int64Value {
	if value == "" {
		return nil
	}
	id, err := strconv.ParseInt(value, 10, 64)
	if err != nil || id < 0 {
		fail("arguments", fmt.Errorf("-%s %q: want a numeric id", flagName, value))
	}
	return &runtimeapi.Int64Value{Value: id}
}

func main() {
	var cdiDevices, annotations, envs list
	endpoint := flag.String("endpoint", "unix:///run/containerd/containerd.sock", "CRI endpoint")
	image := flag.String("image", "", "image of the container (already present)")
	handler := flag.String("runtime-handler", "", "runtime handler of the sandbox (default: the runtime's default)")
	name := flag.String("name", "cri-run", "pod and container name")
	runAsUser := flag.String("run-as-user", "", "uid the container runs as")
	runAsGroup := flag.String("run-as-group", "", "gid the container runs as")
	timeout := flag.Duration("timeout", 2*time.Minute, "upper bound for the whole run")
	flag.Var(&cdiDevices, "cdi-device", "CDI device for ContainerConfig.CDIDevices (repeatable)")
	flag.Var(&annotations, "annotation", "container annotation KEY=VALUE (repeatable)")
	flag.Var(&envs, "env", "container environment KEY=VALUE (repeatable)")
	flag.Parse()
	command := flag.Args()
	if *image == "" || len(command) == 0 {
		fail("arguments", errors.New("want -image NAME and a command after --"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	runtime, err := cri.NewRemoteRuntimeService(ctx, *endpoint, 30*time.Second, nil, false)
	if err != nil {
		fail("connect to "+*endpoint, err)
	}

	hostNetwork := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}
	sandboxConfig := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name:      *name,
			Uid:       *name + "-" + strconv.Itoa(os.Getpid()),
			Namespace: "amdgpu-cdi-test",
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: hostNetwork},
		},
	}
	sandbox, err := runtime.RunPodSandbox(ctx, sandboxConfig, *handler)
	if err != nil {
		fail("run pod sandbox", err)
	}
	// Cleanup runs on every path below; os.Exit skips defers, so exits go through finish.
	finish := func(code int, container string) {
		cleanup, cancelCleanup := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancelCleanup()
		if container != "" {
			_ = runtime.StopContainer(cleanup, container, 0)
			_ = runtime.RemoveContainer(cleanup, container)
		}
		_ = runtime.StopPodSandbox(cleanup, sandbox)
		_ = runtime.RemovePodSandbox(cleanup, sandbox)
		os.Exit(code)
	}

	containerConfig := &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: *name},
		Image:       &runtimeapi.ImageSpec{Image: *image},
		Command:     []string{"sleep", "3600"},
		Annotations: keyValues("annotation", annotations),
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: hostNetwork,
				RunAsUser:        optionalID("run-as-user", *runAsUser),
				RunAsGroup:       optionalID("run-as-group", *runAsGroup),
			},
		},
	}
	for k, v := range keyValues("env", envs) {
		containerConfig.Envs = append(containerConfig.Envs, &runtimeapi.KeyValue{Key: k, Value: []byte(v)})
	}
	for _, d := range cdiDevices {
		containerConfig.CDIDevices = append(containerConfig.CDIDevices, &runtimeapi.CDIDevice{Name: d})
	}
	container, err := runtime.CreateContainer(ctx, sandbox, containerConfig, sandboxConfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-run: create container: %v\n", err)
		finish(1, "")
	}
	if err := runtime.StartContainer(ctx, container); err != nil {
		fmt.Fprintf(os.Stderr, "cri-run: start container: %v\n", err)
		finish(1, container)
	}

	stdout, stderr, err := runtime.ExecSync(ctx, container, command, *timeout)
	os.Stdout.Write(stdout)
	os.Stderr.Write(stderr)
	var exit utilexec.CodeExitError
	switch {
	case err == nil:
		finish(0, container)
	case errors.As(err, &exit):
		finish(exit.Code, container)
	default:
		fmt.Fprintf(os.Stderr, "cri-run: exec in container: %v\n", err)
		finish(1, container)
	}
}
