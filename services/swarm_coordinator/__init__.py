"""swarm-coordinator: agent membership, heartbeats, liveness and the registry KV bucket."""
