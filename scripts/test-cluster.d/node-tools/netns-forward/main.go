// Command netns-forward listens on loopback addresses of the network namespace it runs in
// and forwards every connection to the same port on 127.0.0.1 of another network
// namespace (a file such as /run/netns/NAME). The test cluster's control plane lives in
// its own namespace; this lets clients on the machine's loopback reach the API server and
// etcd without any address outside 127.0.0.0/8 appearing in the machine's namespace.
//
// With -to-host it works the other way: it listens on ADDR:PORT inside the namespace and
// forwards every connection to HOST_PORT on the machine's own 127.0.0.1, so that Pods of
// the test cluster reach a test server (such as a test gateway) that listens on loopback,
// at an address of the cluster's namespace (e.g. the node IP).
//
//	netns-forward /run/netns/NAME PORT [PORT...]
//	netns-forward -to-host /run/netns/NAME ADDR:PORT HOST_PORT
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
	if len(os.Args) == 5 && os.Args[1] == "-to-host" {
		toHost(os.Args[2], os.Args[3], os.Args[4])
		return
	}
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
	splice(client, upstream)
}

// splice copies both ways until both directions have ended, then closes both connections.
func splice(client, upstream net.Conn) {
	defer client.Close()
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

// toHost listens on listenAddr inside the namespace and forwards to the machine's loopback.
func toHost(nsPath, listenAddr, hostPort string) {
	ln, err := listenInNamespace(nsPath, listenAddr)
	if err != nil {
		log.Fatalf("listen on %s in %s: %v", listenAddr, nsPath, err)
	}
	target := net.JoinHostPort("127.0.0.1", hostPort)
	log.Printf("forwarding %s in %s to %s", ln.Addr(), nsPath, target)
	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Fatalf("accept on %s: %v", listenAddr, err)
		}
		go func() {
			upstream, err := net.Dial("tcp", target)
			if err != nil {
				log.Printf("dial %s: %v", target, err)
				_ = conn.Close()
				return
			}
			splice(conn, upstream)
		}()
	}
}

// listenInNamespace opens the listening socket on a thread that joined the namespace; the
// socket stays in that namespace, and the thread is discarded (see dialInNamespace).
func listenInNamespace(nsPath, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	out := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := enterNamespace(nsPath); err != nil {
			out <- result{nil, err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		out <- result{ln, err}
	}()
	r := <-out
	return r.ln, r.err
}

func enterNamespace(nsPath string) error {
	ns, err := os.Open(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	if _, _, errno := syscall.RawSyscall(sysSetns, ns.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
		return fmt.Errorf("setns: %w", errno)
	}
	return nil
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
		if err := enterNamespace(nsPath); err != nil {
			out <- result{nil, err}
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
