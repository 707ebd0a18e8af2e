// A tiny net/http server for tests/gccgo_http_server_on_lkl.rs. Built with gccgo, whose
// runtime (libgo) makes its socket and epoll calls through glibc, so LD_PRELOAD sees them.
//
//	go-http ADDR:PORT
//
// GET /          -> "hello from gccgo\n"
// GET /bytes?n=N -> N bytes, byte i being i % 251 (a pattern the test checks whole)
package main

import (
	"bufio"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-http ADDR:PORT")
		os.Exit(2)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "hello from gccgo\n")
	})
	http.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 {
			http.Error(w, "n must be a count of bytes", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		out := bufio.NewWriterSize(w, 64<<10)
		for i := 0; i < n; i++ {
			if out.WriteByte(byte(i%251)) != nil {
				return
			}
		}
		out.Flush()
	})
	log.Printf("listening on %s", os.Args[1])
	log.Fatal(http.ListenAndServe(os.Args[1], nil))
}
