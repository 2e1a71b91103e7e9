"""Op modules of the fake backend."""
