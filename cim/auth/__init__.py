"""Who may do what: users with roles and passwords, API tokens, the audit.

- :mod:`cim.auth.roles`: the roles and what they are for.
- :mod:`cim.auth.passwords`: password hashing (Argon2id through pwdlib).
- :mod:`cim.auth.store`: users, tokens and the append-only audit in PostGIS.

The HTTP side (which route needs which role, sessions, headers) is in
:mod:`cim.server.access`; the CLI's ``cim users`` and ``cim tokens`` use the store.
"""
