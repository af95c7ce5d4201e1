"""Side-by-side speed and likelihood benchmarks (not timed tests).

    python -m benchmarks                 # everything, full size (needs binarized MNIST)
    python -m benchmarks --quick         # every benchmark at a small size, to check it
    runs python -m benchmarks --only rbm_speed ais_accuracy

Each run writes ``benchmarks/results/<name>.json`` (every number, the machine, the
versions) and ``benchmarks/results/<name>.md`` (a table), and prints the table.
"""
