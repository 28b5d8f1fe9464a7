// Command netns-forward listens on loopback addresses of the network namespace it runs in
// and forwards every connection to the same port on 127.0.0.1 of another network
// namespace (a file such as /run/netns/NAME). The test cluster's control plane lives in
// its own namespace; this lets clients on the machine's loopback reach the API server and
// etcd without any address outside 127.0.0.0/8 appearing in the machine's namespace.
//
//	netns-forward /run/netns/NAME PORT [PORT...]
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: netns-forward NETNS_FILE PORT [PORT...]")
		os.Exit(2)
	}
	nsPath := os.Args[1]
	for _, raw := range os.Args[2:] {
		port, err := strconv.Atoi(raw)
		if err != nil || port <= 0 || port > 65535 {
			log.Fatalf("invalid port %q", raw)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", raw))
		if err != nil {
			log.Fatalf("listen on 127.0.0.1:%d: %v", port, err)
		}
		go serve(ln, nsPath, raw)
	}
	log.Printf("forwarding 127.0.0.1 ports %v into %s", os.Args[2:], nsPath)
	select {}
}

func serve(ln net.Listener, nsPath, port string) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Fatalf("accept on port %s: %v", port, err)
		}
		go forward(conn, nsPath, port)
	}
}

func forward(client net.Conn, nsPath, port string) {
	defer client.Close()
	upstream, err := dialInNamespace(nsPath, net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		log.Printf("dial 127.0.0.1:%s in %s: %v", port, nsPath, err)
		return
	}
	defer upstream.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tcp, ok := dst.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(upstream, client)
	go pipe(client, upstream)
	<-done
	<-done
}

// dialInNamespace creates the socket on an OS thread that has joined the target namespace.
// The goroutine ends still locked to that thread, so the Go runtime discards the thread
// instead of reusing it in the wrong namespace.
func dialInNamespace(nsPath, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	out := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := os.Open(nsPath)
		if err != nil {
			out <- result{nil, err}
			return
		}
		defer ns.Close()
		if _, _, errno := syscall.RawSyscall(sysSetns, ns.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
			out <- result{nil, fmt.Errorf("setns: %w", errno)}
			return
		}
		conn, err := net.Dial("tcp", addr)
		out <- result{conn, err}
	}()
	r := <-out
	return r.conn, r.err
}

// sysSetns is the number of setns(2), which the syscall package does not name.
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268}[runtime.GOARCH]
