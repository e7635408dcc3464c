// Command loadgen drives unary gRPC calls for `make bench`: a fixed number of calls after a
// warm-up, at a fixed concurrency, over several connections (a server of several processes
// on one SO_REUSEPORT port gets its load by connection), and reports latency percentiles,
// calls per second, its own CPU time and the server processes' CPU time (from /proc).
//
// It sends requests as bytes that the harness serialized with the real protobuf classes,
// and does not decode the answers (only their status): what it costs is the transport, so
// that the server, not the generator, is what runs out of CPU. A call is one or more steps
// made one after the other (the peer stack's feature fetch, then its inference call).
//
//	loadgen -job job.json      # writes the result as JSON on stdout
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Step is one unary call of a workload.
type Step struct {
	Target   string            `json:"target"`   // host:port
	Method   string            `json:"method"`   // e.g. /looper.v1.DecisionService/Decide
	Requests string            `json:"requests"` // file of serialized requests, each after its uint32 LE length
	Metadata map[string]string `json:"metadata"` // e.g. authorization: Bearer ...
	// Unique, when set, is a placeholder in the requests that every call replaces with an id
	// of the same length never used before (decision ids are idempotency keys).
	Unique string `json:"unique"`
	// TraceSampled sends a W3C traceparent with the sampled flag, so that a parent-based
	// sampler on the server records this call.
	TraceSampled bool `json:"trace_sampled"`
}

// Job is one measurement.
type Job struct {
	Name        string `json:"name"`
	Steps       []Step `json:"steps"`
	Concurrency int    `json:"concurrency"`
	Conns       int    `json:"conns"` // connections per step target
	Calls       int    `json:"calls"` // measured calls
	Warmup      int    `json:"warmup"`
	TimeoutMs   int    `json:"timeout_ms"`
	IDPrefix    string `json:"id_prefix"` // makes ids unique across jobs
	ServerPids  []int  `json:"server_pids"`
}

// Result is what the harness reads.
type Result struct {
	Name                 string             `json:"name"`
	Concurrency          int                `json:"concurrency"`
	Conns                int                `json:"conns"`
	Calls                int                `json:"calls"`
	Errors               int                `json:"errors"` // failed calls (shed calls are retried, not failed)
	FirstError           string             `json:"first_error,omitempty"`
	ElapsedS             float64            `json:"elapsed_s"`
	CallsPerS            float64            `json:"calls_per_s"`
	LatencyMs            map[string]float64 `json:"latency_ms"`
	StepP50Ms            []float64          `json:"step_p50_ms"`
	ClientCPUS           float64            `json:"client_cpu_s"`
	ServerCPUS           float64            `json:"server_cpu_s"`
	ServerCPUByPid       map[string]float64 `json:"server_cpu_by_pid"`
	CallsPerServerCPUS   float64            `json:"calls_per_server_cpu_s"`
	ResponseBytesPerCall float64            `json:"response_bytes_per_call"`
	// MachineBusyCPUS is the CPU time every process on the machine used during the measured
	// calls (/proc/stat): beside the server's and the generator's, it shows other load.
	MachineBusyCPUS float64 `json:"machine_busy_cpu_s"`
	// Shed counts answers of RESOURCE_EXHAUSTED (load shedding), each retried after the hint.
	Shed int `json:"shed"`
}

// rawCodec passes serialized messages through; the name keeps the standard content type.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

type step struct {
	Step
	requests    [][]byte
	placeholder []byte
	conns       []*grpc.ClientConn
	ctx         context.Context // carries the step's metadata
}

type runner struct {
	job     Job
	steps   []*step
	timeout time.Duration
	nextID  atomic.Int64

	mu         sync.Mutex
	errors     int
	firstError string
	respBytes  atomic.Int64
	shed       atomic.Int64 // calls answered RESOURCE_EXHAUSTED and sent again
}

// wait sleeps for d unless ctx ends first; it reports whether it slept.
func wait(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// retryDelay is the server's RetryInfo hint, or 50 ms without one (at most a second).
func retryDelay(err error) time.Duration {
	delay := 50 * time.Millisecond
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.RetryInfo); ok && info.GetRetryDelay() != nil {
			delay = info.GetRetryDelay().AsDuration()
		}
	}
	return min(max(delay, time.Millisecond), time.Second)
}

func main() {
	jobPath := flag.String("job", "", "the job, as JSON (see Job)")
	flag.Parse()
	if err := run(*jobPath); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(jobPath string) error {
	raw, err := os.ReadFile(jobPath)
	if err != nil {
		return err
	}
	var job Job
	if err := json.Unmarshal(raw, &job); err != nil {
		return fmt.Errorf("%s: %w", jobPath, err)
	}
	if job.Concurrency < 1 || job.Calls < 1 || len(job.Steps) == 0 {
		return errors.New("a job needs steps, concurrency >= 1 and calls >= 1")
	}
	if job.Conns < 1 {
		job.Conns = 1
	}
	if job.TimeoutMs < 1 {
		job.TimeoutMs = 10000
	}
	r := &runner{job: job, timeout: time.Duration(job.TimeoutMs) * time.Millisecond}
	defer r.close()
	for _, s := range job.Steps {
		built, err := newStep(s, job.Conns)
		r.steps = append(r.steps, built)
		if err != nil {
			return err
		}
	}
	if job.Warmup > 0 {
		r.phase(job.Warmup)
	}
	r.errors, r.firstError = 0, ""
	r.respBytes.Store(0)
	r.shed.Store(0)

	machineBefore := machineBusyCPU()
	serverBefore := serverCPU(job.ServerPids)
	clientBefore := clientCPU()
	started := time.Now()
	latencies, stepLatencies := r.phase(job.Calls)
	elapsed := time.Since(started).Seconds()
	clientUsed := clientCPU() - clientBefore
	serverAfter := serverCPU(job.ServerPids)
	machineUsed := machineBusyCPU() - machineBefore

	result := Result{
		Name: job.Name, Concurrency: job.Concurrency, Conns: job.Conns, Calls: job.Calls,
		Errors: r.errors, FirstError: r.firstError, ElapsedS: elapsed,
		CallsPerS: float64(job.Calls) / elapsed, LatencyMs: summarize(latencies),
		ClientCPUS: clientUsed, ServerCPUByPid: map[string]float64{},
		ResponseBytesPerCall: float64(r.respBytes.Load()) / float64(job.Calls),
		MachineBusyCPUS:      machineUsed,
		Shed:                 int(r.shed.Load()),
	}
	for _, l := range stepLatencies {
		result.StepP50Ms = append(result.StepP50Ms, summarize(l)["p50"])
	}
	for pid, after := range serverAfter {
		if before, ok := serverBefore[pid]; ok {
			result.ServerCPUByPid[strconv.Itoa(pid)] = after - before
			result.ServerCPUS += after - before
		}
	}
	if result.ServerCPUS > 0 {
		result.CallsPerServerCPUS = float64(job.Calls) / result.ServerCPUS
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	return out.Encode(result)
}

func newStep(s Step, conns int) (*step, error) {
	built := &step{Step: s, ctx: context.Background()}
	data, err := os.ReadFile(s.Requests)
	if err != nil {
		return built, err
	}
	for len(data) >= 4 {
		n := int(binary.LittleEndian.Uint32(data))
		if len(data) < 4+n {
			return built, fmt.Errorf("%s: truncated", s.Requests)
		}
		built.requests = append(built.requests, data[4:4+n])
		data = data[4+n:]
	}
	if len(built.requests) == 0 {
		return built, fmt.Errorf("%s: no requests", s.Requests)
	}
	if s.Unique != "" {
		built.placeholder = []byte(s.Unique)
	}
	if len(s.Metadata) > 0 {
		built.ctx = metadata.NewOutgoingContext(built.ctx, metadata.New(s.Metadata))
	}
	for i := 0; i < conns; i++ {
		conn, err := grpc.NewClient(s.Target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
		)
		if err != nil {
			return built, err
		}
		built.conns = append(built.conns, conn)
		if err := connect(conn, 10*time.Second); err != nil {
			return built, fmt.Errorf("%s: %w", s.Target, err)
		}
	}
	return built, nil
}

// connect opens the connection before any call is timed.
func connect(conn *grpc.ClientConn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn.Connect()
	for state := conn.GetState(); state != connectivity.Ready; state = conn.GetState() {
		if !conn.WaitForStateChange(ctx, state) {
			return fmt.Errorf("not ready after %s (state %s)", timeout, state)
		}
	}
	return nil
}

func (r *runner) close() {
	for _, s := range r.steps {
		for _, c := range s.conns {
			c.Close()
		}
	}
}

// phase makes n calls with the job's concurrency; returns each call's latency and each
// step's.
func (r *runner) phase(n int) ([]time.Duration, [][]time.Duration) {
	latencies := make([]time.Duration, n)
	steps := make([][]time.Duration, len(r.steps))
	for i := range steps {
		steps[i] = make([]time.Duration, n)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < r.job.Concurrency; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var reply []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				started := time.Now()
				for k, s := range r.steps {
					stepStarted := time.Now()
					r.call(s, g, i, &reply)
					steps[k][i] = time.Since(stepStarted)
				}
				latencies[i] = time.Since(started)
			}
		}(g)
	}
	wg.Wait()
	return latencies, steps
}

func (r *runner) call(s *step, g, i int, reply *[]byte) {
	request := s.requests[i%len(s.requests)]
	if s.placeholder != nil {
		request = r.withUniqueIDs(request, s.placeholder)
	}
	ctx := s.ctx
	if s.TraceSampled {
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", traceparent())
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := s.conns[g%len(s.conns)].Invoke(ctx, s.Method, &request, reply)
	// A server that sheds load answers RESOURCE_EXHAUSTED, with a RetryInfo hint; a shed call
	// did nothing, so it is sent again after the hint, as a product would, until its deadline.
	// Its latency includes the waits.
	for status.Code(err) == codes.ResourceExhausted && wait(ctx, retryDelay(err)) {
		r.shed.Add(1)
		err = s.conns[g%len(s.conns)].Invoke(ctx, s.Method, &request, reply)
	}
	if err != nil {
		r.mu.Lock()
		r.errors++
		if r.firstError == "" {
			st, _ := status.FromError(err)
			r.firstError = fmt.Sprintf("%s %s: %s: %s", s.Target, s.Method, st.Code(), st.Message())
		}
		r.mu.Unlock()
		return
	}
	r.respBytes.Add(int64(len(*reply)))
}

// withUniqueIDs copies the request with each placeholder replaced by a new id of its length.
func (r *runner) withUniqueIDs(request, placeholder []byte) []byte {
	out := bytes.Clone(request)
	width := len(placeholder) - len(r.job.IDPrefix)
	for rest := out; ; {
		at := bytes.Index(rest, placeholder)
		if at < 0 {
			return out
		}
		id := fmt.Sprintf("%s%0*d", r.job.IDPrefix, width, r.nextID.Add(1))
		copy(rest[at:at+len(placeholder)], id)
		rest = rest[at+len(placeholder):]
	}
}

func traceparent() string {
	return fmt.Sprintf("00-%016x%016x-%016x-01", rand.Uint64(), rand.Uint64(), rand.Uint64()|1)
}

func summarize(values []time.Duration) map[string]float64 {
	ms := make([]float64, len(values))
	total := 0.0
	for i, v := range values {
		ms[i] = float64(v.Nanoseconds()) / 1e6
		total += ms[i]
	}
	sort.Float64s(ms)
	at := func(q float64) float64 {
		if len(ms) == 0 {
			return 0
		}
		i := int(q * float64(len(ms)))
		if i >= len(ms) {
			i = len(ms) - 1
		}
		return ms[i]
	}
	return map[string]float64{"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1),
		"mean": total / float64(max(len(ms), 1))}
}

// clientCPU is this process's user and system CPU seconds.
func clientCPU() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return seconds(usage.Utime) + seconds(usage.Stime)
}

func seconds(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on Linux).
const clockTicks = 100

// serverCPU reads utime+stime (all threads) of each process from /proc/<pid>/stat.
func serverCPU(pids []int) map[int]float64 {
	cpu := map[int]float64{}
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // the process is gone; it is left out of both samples
		}
		text := string(raw)
		fields := strings.Fields(text[strings.LastIndexByte(text, ')')+2:]) // after "pid (comm) "
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		cpu[pid] = (utime + stime) / clockTicks
	}
	return cpu
}

// machineBusyCPU is the machine's non-idle CPU time (user, nice, system, irq, softirq,
// steal) from the first line of /proc/stat.
func machineBusyCPU() float64 {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	busy := 0.0
	for _, k := range []int{1, 2, 3, 6, 7, 8} {
		if k < len(fields) {
			v, _ := strconv.ParseFloat(fields[k], 64)
			busy += v
		}
	}
	return busy / clockTicks
}
