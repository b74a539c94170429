"""Run one cache service: `python -m cache_service`."""

from swarmhub.runtime import run_service

from cache_service.service import CacheService

if __name__ == "__main__":
    run_service(CacheService)
