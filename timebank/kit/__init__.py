"""What every domain shares, and nothing else.

* :mod:`~timebank.kit.value` — the one wrapper of value-moving routes (idempotency claim,
  transaction, stored reply, work after the response);
* :mod:`~timebank.kit.paging` — the one ``Page[T]`` with an opaque cursor and one limit policy;
* :mod:`~timebank.kit.dates` — local calendar days (``from``/``to``) as a UTC range;
* :mod:`~timebank.kit.rules` — the region-rules reader (defaults parsed once, typed sections);
* :mod:`~timebank.kit.errors` — the refusals more than one domain raises;
* :mod:`~timebank.kit.domain` — how a domain registers its routes, commands, rules and tasks;
* :mod:`~timebank.kit.cli` — helpers of command-line actions (a database for the command, progress).

The kit sits between the foundation (settings, db, problems, ids) and the domains: it imports
no domain.
"""
