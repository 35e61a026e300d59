"""Every benchmark of the framework, one entry point: ``python -m meit.bench NAME`` (``--list``: the table).

Throughput (synthesis, preparation, loading, training step, scaling, generation, scoring), the
pretrained-encoder and grounding studies, and backbone suites (train + evaluate each backbone, collect
tables and plots). The table of names is ``meit.bench.registry``; ``meit bench`` reaches the same.
"""
