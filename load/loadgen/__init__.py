"""SwarmHub's load generator (`swarmhub load`) and benchmark suite (`swarmhub bench`)."""
