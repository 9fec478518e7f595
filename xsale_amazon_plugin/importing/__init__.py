"""Importing offers: the life of an import run (start, ownership, heartbeat, cancel,
recovery), the RQ job that advances it step by step, the report checks, the staging and the
one-transaction write of the offers, the integration services and the operator-facing messages.
"""
