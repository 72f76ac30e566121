"""mlgate.controller: everything that touches the outside world (registries, buckets, servers, the CLI)."""
