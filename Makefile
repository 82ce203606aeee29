.PHONY: run test lint bench bench-scale

# The README's quick start, for those who have make.
run:
	scripts/run.sh

test:
	scripts/test.sh

lint:
	scripts/install.sh test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# The throughput benchmark (installs wrk and py-spy if missing; see docs/performance.md).
# Knobs are environment variables, e.g. BENCH_QUICK=1 make bench.
bench:
	scripts/install.sh test
	.venv/bin/python -m bench.run

# Lists at 10k, 100k and 1M objects (about 20 minutes; see docs/performance.md).
bench-scale:
	scripts/install.sh test
	.venv/bin/python -m bench.scale
