"""Amazon itself: the SP-API Reports client, the All Listings Report parser, the
marketplaces and the report charsets. Knows nothing of the plugin's tables or jobs; everything
else builds on it.
"""
