"""cache: a bounded, TTL'd key-value cache served over request/reply."""
