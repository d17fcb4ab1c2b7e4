"""The command-line layer: parse flags, call the library, write records. Nothing else."""
