"""The benchmark runner and the result files of docs/BENCHMARKS.md (run from the repository root).

* :mod:`benchmarks.run`: ``python -m benchmarks.run --model NAME --data DIR --out FILE.json`` trains, predicts
  and evaluates registered xmtc models and the sparse peers, each in its own subprocess.
* :mod:`benchmarks.schema`: the one schema of every JSON file in ``benchmarks/results/``.
* :mod:`benchmarks.table`: ``python -m benchmarks.table FILE...`` prints a markdown table of result files.

See ``benchmarks/README.md`` for the command behind every table.
"""
