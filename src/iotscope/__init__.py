"""iotscope: observe darknet traffic, survey authorized space for default-password IoT devices, act.

The library is the product; ``iotscope.cli`` and (later) ``iotscope.web`` are thin shells over it.
"""

__version__ = "0.1.0"
