# make bench        every benchmark of issue 7 (about 15-30 minutes; 10,000-run leak check)
# make bench-quick  the same with fewer rounds and a 500-run leak check (a few minutes)
# make breakdown    where one warm library run's time goes, and one CLI run's
# Options: make bench BENCH_ARGS="--only latency,seccomp --json out.json"
PY := .venv/bin/python

.PHONY: bench bench-quick breakdown
bench:
	$(PY) -m bench $(BENCH_ARGS)

bench-quick:
	$(PY) -m bench --quick $(BENCH_ARGS)

breakdown:
	$(PY) -m bench --breakdown $(BENCH_ARGS)
