"""Tools around minae that are not part of its reading path: benchmarks."""
