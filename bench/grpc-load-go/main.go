// grpc-load drives one unary gRPC method of the shim with pre-encoded requests, so that
// the load generator costs little CPU next to the Node server it measures (on a 2-core
// machine a grpc-js client needs about as much CPU as the server). bench/grpc.ts builds
// and runs it; the requests arrive base64-encoded on stdin, one per line, and the result
// is one JSON object on stdout.
//
// Closed loop (-rps 0): each of -c callers sends its next request when the previous one
// is answered. Open loop (-rps N): requests are issued at N per second in all, spread over
// the callers, and latency counts from the moment a request was due, so a server that
// falls behind shows it (no coordinated omission).
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// rawCodec passes already-encoded protobuf bytes through unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: want *[]byte, got %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: want *[]byte, got %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

type result struct {
	Calls       int       `json:"calls"`
	Errors      int       `json:"errors"`
	FirstErrors []string  `json:"firstErrors"`
	Seconds     float64   `json:"seconds"`
	Rps         float64   `json:"rps"`
	OfferedRps  float64   `json:"offeredRps"`
	P50         float64   `json:"p50"`
	P90         float64   `json:"p90"`
	P99         float64   `json:"p99"`
	P999        float64   `json:"p999"`
	Max         float64   `json:"max"`
	ClientCpu   float64   `json:"clientCpu"`
	Latencies   []float64 `json:"latencies,omitempty"`
}

func readRequests() ([][]byte, error) {
	var requests [][]byte
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", len(requests), err)
		}
		requests = append(requests, b)
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	if len(requests) == 0 {
		// An empty line is a valid encoding of a message with every field at its default.
		requests = append(requests, []byte{})
	}
	return requests, nil
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func main() {
	address := flag.String("addr", "127.0.0.1:50051", "server address")
	method := flag.String("method", "/agynio.api.runner.v1.RunnerService/Ready", "full method path")
	concurrency := flag.Int("c", 32, "concurrent callers")
	conns := flag.Int("conns", 0, "HTTP/2 connections the callers share (0: one per caller)")
	rps := flag.Float64("rps", 0, "open-loop rate in requests/s (0: closed loop)")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured warm-up")
	duration := flag.Duration("duration", 10*time.Second, "measured time")
	token := flag.String("token", "", "bearer token to send")
	raw := flag.Bool("raw", false, "also print every measured latency")
	flag.Parse()

	requests, err := readRequests()
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading requests:", err)
		os.Exit(2)
	}
	if *conns <= 0 || *conns > *concurrency {
		*conns = *concurrency
	}
	clients := make([]*grpc.ClientConn, *conns)
	for i := range clients {
		cc, err := grpc.NewClient(*address,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
		)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(2)
		}
		cc.Connect()
		defer cc.Close()
		clients[i] = cc
	}
	ctx := context.Background()
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}

	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*duration)
	var next atomic.Int64
	var mu sync.Mutex
	var latencies []float64
	var errors int
	var firstErrors []string
	var cpuAtMeasure float64
	cpuTimer := time.AfterFunc(*warmup, func() {
		mu.Lock()
		cpuAtMeasure = cpuSeconds()
		mu.Unlock()
	})

	var interval time.Duration
	if *rps > 0 {
		interval = time.Duration(float64(time.Second) / *rps)
	}
	var wg sync.WaitGroup
	for worker := 0; worker < *concurrency; worker++ {
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			cc := clients[worker%len(clients)]
			local := make([]float64, 0, 1<<14)
			var reply []byte
			for {
				n := next.Add(1) - 1
				due := time.Now()
				if interval > 0 {
					due = start.Add(time.Duration(n) * interval)
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
				}
				if !due.Before(end) {
					break
				}
				req := requests[int(n)%len(requests)]
				callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := cc.Invoke(callCtx, *method, &req, &reply)
				cancel()
				done := time.Now()
				measured := !due.Before(measureFrom) && !done.After(end)
				if err != nil {
					if measured || !due.Before(measureFrom) {
						mu.Lock()
						errors++
						if len(firstErrors) < 5 {
							firstErrors = append(firstErrors, err.Error())
						}
						mu.Unlock()
					}
					continue
				}
				if measured {
					local = append(local, float64(done.Sub(due).Microseconds())/1000)
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}(worker)
	}
	wg.Wait()
	cpuTimer.Stop()
	cpu := cpuSeconds() - cpuAtMeasure

	sorted := append([]float64(nil), latencies...)
	sort.Float64s(sorted)
	out := result{
		Calls:       len(latencies),
		Errors:      errors,
		FirstErrors: firstErrors,
		Seconds:     duration.Seconds(),
		Rps:         float64(len(latencies)) / duration.Seconds(),
		OfferedRps:  *rps,
		P50:         percentile(sorted, 50),
		P90:         percentile(sorted, 90),
		P99:         percentile(sorted, 99),
		P999:        percentile(sorted, 99.9),
		Max:         percentile(sorted, 100),
		ClientCpu:   cpu / time.Since(measureFrom).Seconds(),
	}
	if out.FirstErrors == nil {
		out.FirstErrors = []string{}
	}
	if *raw {
		out.Latencies = latencies
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
