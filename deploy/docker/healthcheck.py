"""Container health check: the service is ready (connected to NATS, subscribed, not draining).

Exit 0 when SWARMHUB_METRICS_PORT is 0 (no HTTP server: nothing to probe) or /readyz answers 200,
1 otherwise, printing the service's one-line reason. Used by the Dockerfile HEALTHCHECK; needs
nothing beyond the standard library.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    """0 when the service is ready, else 1."""
    port = int(os.environ.get("SWARMHUB_METRICS_PORT", "0") or 0)
    if port == 0:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode(errors="replace").strip()
        print(f"healthcheck: not ready ({exc.code}): {reason}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"healthcheck: /readyz on port {port} did not answer: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
