// nodetool: the only program in moa's locally assembled node images (no registry here).
//
//	nodetool pause               the pod sandbox: sleep until SIGTERM/SIGINT, reap orphans
//	nodetool serve PORT          accept TCP connections on PORT, answer "ok\n"
//	nodetool connect ADDR SECS   exit 0 when a TCP connection to ADDR opens within SECS, else 1
//	nodetool write PATH          exit 0 when PATH can be created (and removes it), else 1
//	nodetool sleep SECS          sleep, then exit 0
//	nodetool whoami              print "uid=U gid=G"
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: nodetool pause|serve|connect|write|sleep|whoami ...")
	}
	switch os.Args[1] {
	case "pause":
		pause()
	case "serve":
		serve(arg(2))
	case "connect":
		connect(arg(2), seconds(arg(3)))
	case "write":
		write(arg(2))
	case "sleep":
		time.Sleep(seconds(arg(2)))
	case "whoami":
		fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	default:
		fail("unknown command " + os.Args[1])
	}
}

func arg(i int) string {
	if len(os.Args) <= i {
		fail(fmt.Sprintf("%s needs %d argument(s)", os.Args[1], i-1))
	}
	return os.Args[i]
}

func seconds(s string) time.Duration {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		fail("not a number of seconds: " + s)
	}
	return time.Duration(n * float64(time.Second))
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "nodetool:", msg)
	os.Exit(2)
}

// pause is PID 1 of the pod sandbox: it holds the namespaces and reaps zombies.
func pause() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

func serve(port string) {
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fail(err.Error())
	}
	fmt.Println("listening on", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			continue
		}
		_, _ = conn.Write([]byte("ok\n"))
		_ = conn.Close()
	}
}

func connect(addr string, timeout time.Duration) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		fmt.Println("unreachable:", err)
		os.Exit(1)
	}
	_ = conn.Close()
	fmt.Println("reachable:", addr)
}

func write(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Println("not writable:", err)
		os.Exit(1)
	}
	_ = f.Close()
	_ = os.Remove(path)
	fmt.Println("writable:", path)
}
