// Command render rewrites results.md from results.json with the current
// tables, without running anything:
//
//	go run ./bench/render -dir bench/results
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/amicrypt/packer-plugin-amicrypt/bench"
)

func main() {
	dir := flag.String("dir", "bench/results", "directory of results.json; results.md is written beside it")
	flag.Parse()
	res, err := bench.LoadResults(filepath.Join(*dir, "results.json"))
	if err == nil {
		err = os.WriteFile(filepath.Join(*dir, "results.md"), []byte(res.Markdown()), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}
