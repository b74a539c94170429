"""Container health check: the service's /metrics endpoint answers.

Exit 0 when SWARMHUB_METRICS_PORT is 0 (metrics off: nothing to probe) or /metrics answers 200,
1 otherwise. Used by the Dockerfile HEALTHCHECK; needs nothing beyond the standard library.
"""

import os
import sys
import urllib.request


def main() -> int:
    port = int(os.environ.get("SWARMHUB_METRICS_PORT", "0") or 0)
    if port == 0:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: /metrics on port {port} did not answer: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
