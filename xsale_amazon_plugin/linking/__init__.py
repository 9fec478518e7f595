"""Linking offers to the host's products: manual links and unlinks, auto-link by SKU,
EAN or ASIN (inline or as a background run), the offer scopes the operator selects, and the
CSV round trip of offer-to-product mappings.
"""
