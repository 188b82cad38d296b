"""Analytics over the packet store as passes (CAIDA corsaro3's model); see docs/analytics.md."""
