"""The care bank's rules and transactions: :mod:`.requests` (the life cycle of a care request),
:mod:`.gifts` (gifts, donations, profiles, relatives, guarantee grants), :mod:`.common`."""
