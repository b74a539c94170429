"""The yardstick of `swarmhub bench --baseline`: a plain nats-py JetStream work-queue pipeline."""
