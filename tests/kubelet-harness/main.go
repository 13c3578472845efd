// Command kubelet-harness resolves image credentials the way the kubelet does, with the kubelet's
// own code: k8s.io/kubernetes/pkg/credentialprovider/plugin, the package the kubelet calls.
//
// It reads a plan (JSON, on stdin) naming a CredentialProviderConfig file and a plugin bin dir,
// registers the plugins through the kubelet's loader (plugin.RegisterCredentialProviderPlugins,
// which reads, decodes strictly and validates the config), then does each lookup of the plan with a
// fresh keyring for the lookup's pod (plugin.NewExternalCredentialProviderDockerKeyring(...).Lookup),
// as the kubelet does for every image pull. All lookups share one process, so the kubelet's
// in-memory credential cache carries over from one lookup to the next.
//
// For each lookup it prints (JSON, on stdout) what the kubelet would hand the container runtime:
// the ordered list of username/password/source, which the kubelet's puller tries in that order.
// It also says whether the plugin ran: pluginRuns is the change, over the lookup, of the
// kubelet's own metric kubelet_credential_provider_plugin_duration (a histogram the package
// observes once per plugin execution, in execPlugin.runPlugin), and pluginErrors that of
// kubelet_credential_provider_plugin_errors_total. Zero runs and a credential means the kubelet's
// cache answered.
//
// The service-account getter serves the plan's service accounts (UID, annotations); the token
// getter hands out the plan's token for the audience the kubelet asks for (and fails for any other
// audience, as no token of the test's was minted for it), recording every TokenRequest.
//
// With "record": true, the plugin bin dir the kubelet sees is a temporary folder in which every
// plugin name is this program: run under that name it executes the real plugin from the plan's
// bin dir with the same arguments, stdin and environment (minus its own two variables), passes its
// stdout, stderr and exit status through, and records the exchange, which the lookup's output then
// lists under "execs" (request and response exactly as they crossed the pipe).
//
// The output carries credentials by design: this is a test tool.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	dto "github.com/prometheus/client_model/go"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/credentialprovider/plugin"
)

const (
	// shimBinDirEnv names the real plugin bin dir when this program runs as a recording shim.
	shimBinDirEnv = "KUBELET_HARNESS_REAL_BIN_DIR"
	// shimRecordEnv names the file the shim appends its records to.
	shimRecordEnv = "KUBELET_HARNESS_RECORD"

	runsMetric   = "kubelet_credential_provider_plugin_duration"
	errorsMetric = "kubelet_credential_provider_plugin_errors_total"
)

// Plan is what the harness does, read from stdin.
type Plan struct {
	// Config is the CredentialProviderConfig file (or folder), as --image-credential-provider-config.
	Config string `json:"config"`
	// BinDir is the plugin folder, as --image-credential-provider-bin-dir.
	BinDir string `json:"binDir"`
	// Record puts the recording shim between the kubelet and the plugins.
	Record bool `json:"record"`
	// FeatureGates are set on the kubelet's feature gate before anything else (e.g.
	// {"KubeletServiceAccountTokenForCredentialProviders": false}); unset gates keep 1.36's defaults.
	FeatureGates map[string]bool `json:"featureGates"`
	// ServiceAccounts are what the service-account and token getters serve.
	ServiceAccounts []ServiceAccount `json:"serviceAccounts"`
	// Lookups are done in order, in this one process.
	Lookups []Lookup `json:"lookups"`
}

// ServiceAccount is one service account of the fake API server.
type ServiceAccount struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid"`
	Annotations map[string]string `json:"annotations"`
	// Tokens maps an audience to the token handed out for it.
	Tokens map[string]string `json:"tokens"`
}

// Lookup is one image pull's credential lookup, for a pod.
type Lookup struct {
	Image string `json:"image"`
	Pod   Pod    `json:"pod"`
}

// Pod names the pod an image is pulled for; an empty ServiceAccount is a pod without one (a
// static pod).
type Pod struct {
	Namespace      string `json:"namespace"`
	Name           string `json:"name"`
	UID            string `json:"uid"`
	ServiceAccount string `json:"serviceAccount"`
}

// Output is what the harness prints.
type Output struct {
	Lookups []Result `json:"lookups"`
}

// Result is one lookup's outcome.
type Result struct {
	Image string `json:"image"`
	// Found is the keyring's second result: whether any credential matched.
	Found bool `json:"found"`
	// Credentials are the runtime's candidates, in the order the kubelet tries them.
	Credentials []Credential `json:"credentials"`
	// PluginRuns is how many times the kubelet executed a plugin for this lookup (its metric).
	PluginRuns uint64 `json:"pluginRuns"`
	// PluginErrors is how many of those executions failed (its metric).
	PluginErrors float64 `json:"pluginErrors"`
	// TokenRequests are the TokenRequests the kubelet made for this lookup.
	TokenRequests []TokenRequest `json:"tokenRequests"`
	// Execs are the recorded plugin executions (with "record": true).
	Execs []Exec `json:"execs"`
}

// Credential is one TrackedAuthConfig, as the kubelet hands it to the runtime.
type Credential struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Source is the kubelet's note of where the credential came from (a service account, with
	// KubeletEnsureSecretPulledImages), or null.
	Source *Source `json:"source"`
}

// Source is a credential's origin.
type Source struct {
	ServiceAccount *Coordinates `json:"serviceAccount,omitempty"`
	Secret         *Coordinates `json:"secret,omitempty"`
}

// Coordinates name an object.
type Coordinates struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// TokenRequest is what the kubelet asked the token getter for.
type TokenRequest struct {
	Namespace         string   `json:"namespace"`
	ServiceAccount    string   `json:"serviceAccount"`
	ServiceAccountUID string   `json:"serviceAccountUID"`
	Audiences         []string `json:"audiences"`
	BoundKind         string   `json:"boundKind"`
	BoundName         string   `json:"boundName"`
	BoundUID          string   `json:"boundUID"`
	// Served is false when the plan had no token for the audience (the lookup then fails).
	Served bool `json:"served"`
}

// Exec is one recorded plugin execution.
type Exec struct {
	Plugin   string   `json:"plugin"`
	Args     []string `json:"args"`
	Stdin    string   `json:"stdin"`
	Stdout   string   `json:"stdout"`
	Stderr   string   `json:"stderr"`
	ExitCode int      `json:"exitCode"`
}

func main() {
	if realDir, ok := os.LookupEnv(shimBinDirEnv); ok {
		os.Exit(shim(realDir, os.Getenv(shimRecordEnv)))
	}
	klog.InitFlags(nil)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [klog flags, e.g. -v=5] < plan.json\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-harness: error: %v\n", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var plan Plan
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&plan); err != nil {
		return fmt.Errorf("reading the plan: %w", err)
	}
	if len(plan.FeatureGates) > 0 {
		if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(plan.FeatureGates); err != nil {
			return fmt.Errorf("feature gates: %w", err)
		}
	}

	binDir := plan.BinDir
	var record *recorder
	if plan.Record {
		var err error
		if record, err = newRecorder(plan.BinDir); err != nil {
			return err
		}
		defer record.close()
		binDir = record.shimDir
	}

	api := &fakeAPIServer{accounts: plan.ServiceAccounts}
	if err := plugin.RegisterCredentialProviderPlugins(plan.Config, binDir, api.token, api.serviceAccount); err != nil {
		return fmt.Errorf("the kubelet's loader refused the configuration: %w", err)
	}

	var output Output
	for _, l := range plan.Lookups {
		runsBefore, errorsBefore, err := pluginMetrics()
		if err != nil {
			return err
		}
		api.requests = nil
		keyring := plugin.NewExternalCredentialProviderDockerKeyring(l.Pod.Namespace, l.Pod.Name, l.Pod.UID, l.Pod.ServiceAccount)
		creds, found := keyring.Lookup(l.Image)
		runsAfter, errorsAfter, err := pluginMetrics()
		if err != nil {
			return err
		}
		r := Result{
			Image:         l.Image,
			Found:         found,
			Credentials:   []Credential{},
			PluginRuns:    runsAfter - runsBefore,
			PluginErrors:  errorsAfter - errorsBefore,
			TokenRequests: api.requests,
			Execs:         []Exec{},
		}
		if r.TokenRequests == nil {
			r.TokenRequests = []TokenRequest{}
		}
		for _, c := range creds {
			cred := Credential{Username: c.Username, Password: c.Password}
			if s := c.Source; s != nil {
				cred.Source = &Source{}
				if sa := s.ServiceAccount; sa != nil {
					cred.Source.ServiceAccount = &Coordinates{Namespace: sa.Namespace, Name: sa.Name, UID: sa.UID}
				}
				if sec := s.Secret; sec != nil {
					cred.Source.Secret = &Coordinates{Namespace: sec.Namespace, Name: sec.Name, UID: sec.UID}
				}
			}
			r.Credentials = append(r.Credentials, cred)
		}
		if record != nil {
			if r.Execs, err = record.next(); err != nil {
				return err
			}
		}
		output.Lookups = append(output.Lookups, r)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(output)
}

// pluginMetrics reads the kubelet's credential-provider metrics from the legacy registry, summed
// over plugins: executions (the duration histogram's sample count) and errors.
func pluginMetrics() (runs uint64, errs float64, err error) {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return 0, 0, fmt.Errorf("gathering the kubelet's metrics: %w", err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case runsMetric:
				runs += histogramCount(m)
			case errorsMetric:
				errs += m.GetCounter().GetValue()
			}
		}
	}
	return runs, errs, nil
}

func histogramCount(m *dto.Metric) uint64 {
	if h := m.GetHistogram(); h != nil {
		return h.GetSampleCount()
	}
	return 0
}

// fakeAPIServer answers the kubelet's service-account and token requests from the plan.
type fakeAPIServer struct {
	accounts []ServiceAccount
	requests []TokenRequest
}

func (a *fakeAPIServer) find(namespace, name string) *ServiceAccount {
	for i := range a.accounts {
		if a.accounts[i].Namespace == namespace && a.accounts[i].Name == name {
			return &a.accounts[i]
		}
	}
	return nil
}

func (a *fakeAPIServer) serviceAccount(namespace, name string) (*v1.ServiceAccount, error) {
	sa := a.find(namespace, name)
	if sa == nil {
		return nil, fmt.Errorf("serviceaccounts %q not found in namespace %q", name, namespace)
	}
	return &v1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   sa.Namespace,
			Name:        sa.Name,
			UID:         types.UID(sa.UID),
			Annotations: sa.Annotations,
		},
	}, nil
}

func (a *fakeAPIServer) token(namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	req := TokenRequest{
		Namespace:         namespace,
		ServiceAccount:    name,
		ServiceAccountUID: string(tr.UID),
		Audiences:         tr.Spec.Audiences,
	}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		req.BoundKind, req.BoundName, req.BoundUID = ref.Kind, ref.Name, string(ref.UID)
	}
	var token string
	if sa := a.find(namespace, name); sa != nil && len(tr.Spec.Audiences) == 1 {
		token, req.Served = sa.Tokens[tr.Spec.Audiences[0]]
	}
	a.requests = append(a.requests, req)
	if !req.Served {
		return nil, fmt.Errorf("no token for service account %s/%s and audiences %q", namespace, name, tr.Spec.Audiences)
	}
	out := tr.DeepCopy()
	out.Status = authenticationv1.TokenRequestStatus{Token: token}
	return out, nil
}

// recorder owns the shim folder and reads the shim's records.
type recorder struct {
	shimDir string
	file    string
	offset  int64
}

// newRecorder makes a folder in which every entry of binDir is a link to this program, and
// points the shim (through this process's environment, which the kubelet's exec passes on) at
// binDir and a record file.
func newRecorder(binDir string) (*recorder, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program: %w", err)
	}
	entries, err := os.ReadDir(binDir)
	if err != nil {
		return nil, fmt.Errorf("reading the plugin bin dir: %w", err)
	}
	dir, err := os.MkdirTemp("", "kubelet-harness-")
	if err != nil {
		return nil, err
	}
	r := &recorder{shimDir: filepath.Join(dir, "bin"), file: filepath.Join(dir, "execs.jsonl")}
	if err := os.Mkdir(r.shimDir, 0o700); err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := os.Symlink(self, filepath.Join(r.shimDir, e.Name())); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(r.file, nil, 0o600); err != nil {
		return nil, err
	}
	absBin, err := filepath.Abs(binDir)
	if err != nil {
		return nil, err
	}
	if err := os.Setenv(shimBinDirEnv, absBin); err != nil {
		return nil, err
	}
	if err := os.Setenv(shimRecordEnv, r.file); err != nil {
		return nil, err
	}
	return r, nil
}

// next returns the records written since the last call.
func (r *recorder) next() ([]Exec, error) {
	f, err := os.Open(r.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(r.offset, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	r.offset += int64(len(data))
	execs := []Exec{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var e Exec
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("reading a shim record: %w", err)
		}
		execs = append(execs, e)
	}
	return execs, sc.Err()
}

func (r *recorder) close() {
	os.RemoveAll(filepath.Dir(r.shimDir))
}

// shim runs the real plugin named like this program was invoked, from realDir, passing
// everything through, and appends a record of the exchange to recordFile. Returns the plugin's
// exit status.
func shim(realDir, recordFile string) int {
	name := filepath.Base(os.Args[0])
	stdin, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-harness shim: reading stdin: %v\n", err)
		return 1
	}
	var env []string
	for _, kv := range os.Environ() {
		if !hasKey(kv, shimBinDirEnv) && !hasKey(kv, shimRecordEnv) {
			env = append(env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(realDir, name), os.Args[1:]...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = io.MultiWriter(os.Stdout, &stdout)
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	code := 0
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			fmt.Fprintf(os.Stderr, "kubelet-harness shim: running %s: %v\n", name, err)
			return 127
		}
		code = exitErr.ExitCode()
		if code < 0 {
			code = 128
		}
	}
	rec, err := json.Marshal(Exec{
		Plugin:   name,
		Args:     os.Args[1:],
		Stdin:    string(stdin),
		Stdout:   stdout.String(),
		Stderr:   stderr.String(),
		ExitCode: code,
	})
	if err == nil {
		err = appendLine(recordFile, rec)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-harness shim: recording: %v\n", err)
		return 1
	}
	return code
}

func hasKey(kv, key string) bool {
	return len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '='
}

// appendLine appends one line under an exclusive lock (the kubelet may run plugins concurrently).
func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	return err
}
