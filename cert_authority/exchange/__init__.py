"""The provincial link (归集): the change feed, the pusher, province mode and reconciliation."""
