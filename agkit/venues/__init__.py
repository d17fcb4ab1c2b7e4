"""Live venues (the network edge of `agkit exec`)."""
