# make bench        every benchmark of issues 7 and 12 (about 10-15 minutes; 10,000-run leak check)
# make bench-quick  the same with fewer rounds and a 500-run leak check (a couple of minutes)
# make breakdown    where one warm library run's time goes, and one CLI run's
# make floor        the kernel's own cost of each step of a strict run (C, without us)
# Options: make bench BENCH_ARGS="--only latency,seccomp --json out.json"
# Peers (isolate, nsjail, runc, crun) are timed when found on PATH or under
# SANDBOX_BENCH_PEERS=dir[:dir...] (each dir, its subdirs and their bin/).
PY := .venv/bin/python

.PHONY: bench bench-quick breakdown floor
bench:
	$(PY) -m bench $(BENCH_ARGS)

bench-quick:
	$(PY) -m bench --quick $(BENCH_ARGS)

breakdown:
	$(PY) -m bench --breakdown $(BENCH_ARGS)

floor:
	$(PY) -m bench --only floor $(BENCH_ARGS)
