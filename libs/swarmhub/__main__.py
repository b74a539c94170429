"""`python -m swarmhub`: the `swarmhub` command."""

import sys

from swarmhub.cli import main

sys.exit(main())
