# Link, Event and rollups arrive with the analytics capability.
