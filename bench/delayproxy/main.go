// Command delayproxy is a TCP proxy that adds a fixed delay to every byte in
// each direction, so a local S3 server looks like one a network away: with
// -delay 15ms a request's round trip grows by 30 ms. It delays, it does not
// throttle: each direction's bytes are stamped as they are read and written
// out once their delay has passed, so many requests in flight on many
// connections overlap as they would on a long link. The TCP handshake
// itself is local (clients that reuse connections, as all the benchmarked
// tools do, pay it once per connection anyway).
//
//	delayproxy -listen 127.0.0.1:0 -target 127.0.0.1:7070 -delay 15ms
//
// It prints "listening on ADDR" on stdout once it accepts connections and
// runs until killed.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "host:port to forward to")
	delay := flag.Duration("delay", 0, "added to each direction (the round trip grows by twice this)")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "delayproxy: -target is required")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "delayproxy:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "delayproxy:", err)
			os.Exit(1)
		}
		go serve(c.(*net.TCPConn), *target, *delay)
	}
}

func serve(client *net.TCPConn, target string, delay time.Duration) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		client.Close()
		return
	}
	server := up.(*net.TCPConn)
	done := make(chan struct{}, 2)
	go func() { pipe(server, client, delay); done <- struct{}{} }()
	go func() { pipe(client, server, delay); done <- struct{}{} }()
	<-done
	<-done
	client.Close()
	server.Close()
}

type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each chunk delay after it was read; at EOF it
// half-closes dst (after the delayed bytes), on an error it closes both.
func pipe(dst, src *net.TCPConn, delay time.Duration) {
	if delay <= 0 {
		_, err := io.Copy(dst, src)
		finish(dst, src, err)
		return
	}
	q := make(chan chunk, 1024)
	go func() {
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(delay)}
			}
			if err != nil {
				if err != io.EOF {
					q <- chunk{due: time.Now()} // nil b: an error, close at once
				}
				close(q)
				return
			}
		}
	}()
	var werr error
	for c := range q {
		if c.b == nil {
			werr = io.ErrUnexpectedEOF
			continue
		}
		if werr != nil {
			continue // drain
		}
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if _, werr = dst.Write(c.b); werr != nil {
			src.Close() // unblocks the reader; the rest is drained
		}
	}
	finish(dst, src, werr)
}

func finish(dst, src *net.TCPConn, err error) {
	if err != nil {
		dst.Close()
		src.Close()
		return
	}
	_ = dst.CloseWrite()
}
