"""`python -m corral.client.ctl`: the same as the `corralctl` script."""

import sys

from corral.client.ctl import main

sys.exit(main())
