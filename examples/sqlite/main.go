// Command sqlite is kiln's cgo example: a small service on
// github.com/mattn/go-sqlite3, which links SQLite's C code and so needs
// CGO_ENABLED=1. Built with CGO_ENABLED=0 it still compiles, into a stub
// that fails at run time; kiln plan refuses that target.
//
//	sqlite --version          print the app and SQLite versions, open a database, exit
//	sqlite [--listen :8080]   serve /, /healthz and /notes backed by an in-memory database
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

var version = "dev"

func main() {
	showVersion := flag.Bool("version", false, "open a database, print the versions and exit")
	listen := flag.String("listen", ":8080", "address to serve HTTP on")
	flag.Parse()

	db, err := sql.Open("sqlite3", "file::memory:?cache=shared")
	if err != nil {
		fail(err)
	}
	defer db.Close()
	var sqliteVersion string
	if err := db.QueryRow("select sqlite_version()").Scan(&sqliteVersion); err != nil {
		fail(err)
	}
	if *showVersion {
		fmt.Printf("sqlite-example %s (%s %s/%s) sqlite %s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, sqliteVersion)
		return
	}
	if _, err := db.Exec("create table notes (id integer primary key, body text not null)"); err != nil {
		fail(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "sqlite %s\n", sqliteVersion) })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := db.PingContext(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/notes", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if _, err := db.ExecContext(r.Context(), "insert into notes (body) values (?)", r.FormValue("body")); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		var n int
		if err := db.QueryRowContext(r.Context(), "select count(*) from notes").Scan(&n); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d notes\n", n)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("sqlite example %s listening on %s", version, *listen)
	log.Fatal(srv.ListenAndServe())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sqlite:", err)
	os.Exit(1)
}
