// Command hello is kiln's example service: small, but it uses what real
// services use and what decides whether an image works: DNS (net), TLS
// (crypto/x509 and a CA bundle) and time zones (zoneinfo).
//
//	hello --version             print the version and exit
//	hello --lookup NAME         resolve NAME, print the addresses and exit
//	hello --fetch https://…     GET the URL, print the status and exit
//	hello --tz Europe/Paris     load a time zone, print the local time and exit
//	hello [--listen :8080]      serve /, /healthz, /time?tz=…, /lookup?name=…
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	var (
		showVersion = flag.Bool("version", false, "print the version and exit")
		listen      = flag.String("listen", ":8080", "address to serve HTTP on")
		lookup      = flag.String("lookup", "", "resolve this name, print the addresses and exit")
		fetch       = flag.String("fetch", "", "GET this URL, print the HTTP status and exit")
		tz          = flag.String("tz", "", "load this time zone, print the time there and exit")
	)
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case *showVersion:
		fmt.Printf("hello %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	case *lookup != "":
		addrs, err := net.DefaultResolver.LookupHost(ctx, *lookup)
		exitOn(err)
		fmt.Println(*lookup, addrs)
	case *fetch != "":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, *fetch, nil)
		exitOn(err)
		resp, err := http.DefaultClient.Do(req)
		exitOn(err)
		resp.Body.Close()
		fmt.Println(*fetch, resp.Status)
	case *tz != "":
		now, err := timeIn(*tz)
		exitOn(err)
		fmt.Println(*tz, now.Format(time.RFC3339))
	default:
		serve(*listen)
	}
}

func serve(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "hello %s\n", version) })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/time", func(w http.ResponseWriter, r *http.Request) {
		now, err := timeIn(r.URL.Query().Get("tz"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, now.Format(time.RFC3339))
	})
	mux.HandleFunc("/lookup", func(w http.ResponseWriter, r *http.Request) {
		addrs, err := net.DefaultResolver.LookupHost(r.Context(), r.URL.Query().Get("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_ = json.NewEncoder(w).Encode(addrs)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("hello %s listening on %s", version, addr)
	log.Fatal(srv.ListenAndServe())
}

func timeIn(zone string) (time.Time, error) {
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return time.Time{}, err
	}
	return time.Now().In(loc), nil
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
