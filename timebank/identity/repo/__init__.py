"""SQL of the identity domain, one module per feature; rows leave as Structs.

* :mod:`.regions` — regions and their rule rows (seeding writes them);
* :mod:`.scope` — may a principal reach an organisation, a volunteer, a shop; live proxy grants;
* :mod:`.accounts` — what login needs of an account, passwords, WeChat, mobile numbers in use;
* :mod:`.volunteers`, :mod:`.operators` — people (staff, shop operators, administrators);
* :mod:`.organisations` — the organisation tree and partner shops;
* :mod:`.grants` — proxy grants (亲情代理);
* :mod:`.sessions` — refresh tokens, one-time codes, login failures, rate limits;
* :mod:`.rekey` — re-encrypting personal data under a new key;
* :mod:`.audit` — who changed what.
"""
