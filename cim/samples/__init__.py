"""Synthetic sample data sets (see :mod:`cim.samples.futian`)."""

import enum


class Scale(str, enum.Enum):
    small = "small"  # the committed sample: about 2,000 buildings
    full = "full"  # generated on demand: 20,000+ buildings, 270,000 sensors
