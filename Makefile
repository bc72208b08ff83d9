# obdcr: Open Banking Dynamic Client Registration for Ory Hydra.
# `make demo` and `make test` work on a fresh clone; the scripts install what they need.

.PHONY: demo test bench faults build hydra clean help screenshots

help:
	@echo "make demo   Hydra, obdcr and the sandbox on loopback; a UK and an AU registration over mTLS"
	@echo "make test   every test, unit and integration, on a real Hydra, with -race"
	@echo "make bench  benchmarks and the load tool against a real Hydra; ends with one JSON line"
	@echo "make faults three replicas, PostgreSQL and Hydra on network namespaces, under partitions, kills and pauses;"
	@echo "            invariants checked against Hydra's and PostgreSQL's state; writes deploy/faults/RESULTS.md (root)"
	@echo "make build  bin/obdcr and bin/obdcr-sandbox"
	@echo "make hydra  build and cache Ory Hydra v2.3.0 under .cache/"
	@echo "make screenshots  the policy console's pages at 1440 and 390 px, in deploy/console-screenshots/"

demo:
	@bash deploy/scripts/demo.sh

test:
	@bash deploy/scripts/test.sh

bench:
	@bash deploy/scripts/bench.sh

faults:
	@bash deploy/scripts/faults.sh

build:
	go build -o bin/obdcr ./cmd/obdcr
	go build -o bin/obdcr-sandbox ./cmd/obdcr-sandbox

hydra:
	@bash deploy/scripts/hydra.sh

screenshots:
	@bash deploy/scripts/screenshots.sh

clean:
	rm -rf bin .cache/demo .cache/bin
