"""``python -m meit.bench NAME [options…]``: run one benchmark by name (``--list`` shows them all)."""

from meit.bench.registry import main

raise SystemExit(main())
