"""Synthetic sample data sets (see :mod:`cim.samples.futian`)."""
