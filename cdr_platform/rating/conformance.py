"""`python -m cdr_platform.rating.conformance --plans DIR --cases FILE`; see lib/rating/conformance.py."""

import sys

from cdr_platform.lib.rating.conformance import main

if __name__ == "__main__":
    sys.exit(main())
