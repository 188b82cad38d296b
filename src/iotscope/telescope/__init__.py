"""Telescope stage: what the darknet's decoded packets are (classes, and later fingerprints, events)."""

from iotscope.telescope.classify import flag_class, traffic_class

__all__ = ["flag_class", "traffic_class"]
