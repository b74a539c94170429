"""Run one cache service: `python -m swarmhub.cache_service`."""

from swarmhub.cache_service.service import CacheService
from swarmhub.config import CacheSettings
from swarmhub.service_main import service_main

if __name__ == "__main__":
    service_main(CacheService, CacheSettings)
