"""The ledger: an append-only double-entry ledger of service time (minutes) and points (积分).

Other domains move value only through :mod:`timebank.ledger.service`; see its module docstring.
"""
