"""Run one cache service: `python -m cache_service`."""

from cache_service.service import CacheService
from swarmhub.runtime import run_service

if __name__ == "__main__":
    run_service(CacheService)
