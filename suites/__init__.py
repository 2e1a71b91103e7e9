"""Built-in suite files (shipped in the wheel as ``gpubench.suites``)."""
