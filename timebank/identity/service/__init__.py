"""Identity rules, one module per feature.

* :mod:`.common` — the services' context, personal-data parsing, who may manage what, scope, paging;
* :mod:`.auth` — one-time codes, registration, the login kinds, token rotation, passwords, WeChat;
* :mod:`.profile` — who the caller is;
* :mod:`.organisations` — the organisation tree and partner shops;
* :mod:`.operators` — staff and shop operators;
* :mod:`.volunteers` — volunteers as staff and administrators manage them;
* :mod:`.grants` — proxy grants (亲情代理);
* :mod:`.audit` — recording and reading who changed what;
* :mod:`.housekeeping` — purging spent sign-in state, re-encrypting personal data under a new key.

Every function takes a connection and the caller; scope checks (:mod:`timebank.identity.scope`)
run before anything named in a request is read or changed. Personal data is validated, encrypted
and masked here; plaintext never leaves these modules except to the SMS sender.
"""
