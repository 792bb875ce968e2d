module github.com/amicrypt/packer-plugin-amicrypt/tools/benchstat

go 1.26.0

tool golang.org/x/perf/cmd/benchstat

require (
	github.com/aclements/go-moremath v0.0.0-20210112150236-f10218a38794 // indirect
	golang.org/x/perf v0.0.0-20250909190841-7e13e04d9366 // indirect
)
