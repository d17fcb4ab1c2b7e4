"""Execution: the OMS, the venue interface, the paper venue and the `agkit exec` stage."""
