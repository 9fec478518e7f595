"""Scheduled imports: schedule specs and their due slots, setting and running the
schedules, how fresh each integration's offers are, the alerts about stale integrations and
the periodic tick that drives it all.
"""
