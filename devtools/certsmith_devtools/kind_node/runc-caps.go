// runc-caps runs runc after removing, from the container's capability sets, the capabilities this
// machine's bounding set lacks. Privileged containers ask for every capability; where the host itself
// runs without one (this project's CI machines lack CAP_SYS_RESOURCE), runc fails with "unable to apply
// caps: operation not permitted", and so would every kind node and every privileged Pod in it. Where the
// bounding set is full, it changes nothing.
//
// Used as Docker's default runtime by hack/with-dockerd.sh when capabilities are missing, and as `runc`
// inside the offline kind node image. The real runc is RUNC_CAPS_RUNC, else /usr/sbin/runc.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// The capabilities in the order of their numbers (linux/capability.h).
var capabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
	"LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
	"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
	"CHECKPOINT_RESTORE",
}

func main() {
	runc := os.Getenv("RUNC_CAPS_RUNC")
	if runc == "" {
		runc = "/usr/sbin/runc"
	}
	args := os.Args[1:]
	if missing := missingCapabilities(); len(missing) > 0 {
		if bundle := flagValue(args, "--bundle", "-b"); bundle != "" {
			check(filterFile(bundle+"/config.json", missing, true))
		}
		if process := flagValue(args, "--process", "-p"); process != "" {
			check(filterFile(process, missing, false))
		}
	}
	check(syscall.Exec(runc, append([]string{"runc"}, args...), os.Environ()))
}

func missingCapabilities() map[string]bool {
	status, err := os.ReadFile("/proc/self/status")
	check(err)
	missing := map[string]bool{}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, found := strings.CutPrefix(line, "CapBnd:"); found {
			bounding, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			check(err)
			for number, name := range capabilities {
				if bounding&(1<<number) == 0 {
					missing["CAP_"+name] = true
				}
			}
		}
	}
	return missing
}

func flagValue(args []string, names ...string) string {
	for index, arg := range args {
		for _, name := range names {
			if arg == name && index+1 < len(args) {
				return args[index+1]
			}
			if value, found := strings.CutPrefix(arg, name+"="); found {
				return value
			}
		}
	}
	return ""
}

// filterFile removes the missing capabilities from an OCI bundle's config.json (under "process") or
// from a process.json of `runc exec` (at the top).
func filterFile(path string, missing map[string]bool, underProcess bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var document map[string]any
	if err := json.Unmarshal(raw, &document); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	process := document
	if underProcess {
		process, _ = document["process"].(map[string]any)
	}
	sets, _ := process["capabilities"].(map[string]any)
	for set, names := range sets {
		list, _ := names.([]any)
		kept := []any{}
		for _, name := range list {
			if text, _ := name.(string); !missing[text] {
				kept = append(kept, name)
			}
		}
		sets[set] = kept
	}
	filtered, err := json.Marshal(document)
	if err != nil {
		return err
	}
	return os.WriteFile(path, filtered, 0o600)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "runc-caps:", err)
		os.Exit(1)
	}
}
