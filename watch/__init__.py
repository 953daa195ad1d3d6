"""Watch hub: fans store events out to watchers."""
