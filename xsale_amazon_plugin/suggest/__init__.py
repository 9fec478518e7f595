"""The mapping assistant: an index of the host's products kept fresh by triggers or a
fingerprint, the engine ranking products for an offer, the stored suggestions with the
operator's decisions, and the jobs that compute them and check the catalogue.
"""
