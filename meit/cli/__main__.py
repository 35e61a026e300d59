import sys

from meit.cli import main

sys.exit(main())
