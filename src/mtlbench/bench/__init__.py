"""Benchmarks, apart from the pipeline: `python -m mtlbench.bench` (training throughput,
throughput.py; the original Keras side in keras_side.py) and `python -m mtlbench.bench.pipeline`
(a smoke run's overhead outside training and its storage). Their results live in bench/ and
metrics/bench*.json, never in timed tests."""
