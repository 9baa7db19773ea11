"""The applications every server runs in the benchmarks (imported by the servers, cwd=bench/)."""
