"""`python -m <service>`: `--help` lists the service's settings, bad settings fail in one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ValidationError

from swarmhub import telemetry
from swarmhub.codec import describe_validation_error
from swarmhub.config import ENV_PREFIX, BusSettings, TelemetrySettings
from swarmhub.runtime import Service, run_service


def settings_help(*groups: type[BaseModel]) -> str:
    """One line per setting: its environment variable, default and description."""
    lines = ["settings (environment variables):"]
    for group in groups:
        for name, field in group.model_fields.items():
            default = "" if field.default is None else f" (default {field.default})"
            about = f"  {field.description}" if field.description else ""
            lines.append(f"  {ENV_PREFIX}{name.upper()}{default}{about}")
    return "\n".join(lines)


def service_main(
    factory: Callable[[], Service],
    settings: type[BaseModel],
    argv: Sequence[str] | None = None,
) -> None:
    """Parse `--help`, build the service (a setting error is one line, exit 2), then run it."""
    service_class = factory if isinstance(factory, type) else None
    name = getattr(service_class, "name", "service")
    parser = argparse.ArgumentParser(
        # The package the service class lives in is what `python -m` runs.
        prog=f"python -m {factory.__module__.rpartition('.')[0] or factory.__module__}",
        description=getattr(service_class, "description", None),
        epilog=settings_help(settings, BusSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    try:
        # Logging first: parts of a service keep the logger they are built with.
        telemetry.configure_logging(name, TelemetrySettings())
        service = factory()
    except ValidationError as exc:
        print(f"error: invalid settings: {describe_validation_error(exc)}", file=sys.stderr)
        sys.exit(2)
    except ValueError as exc:  # e.g. an app that cannot be loaded, an unknown capability
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    run_service(lambda: service)
