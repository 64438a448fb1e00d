"""The web admin UI: Minion::Admin's pages and actions, and what only this daemon has.

Imported by the supervisor (which runs it as a process of its own) and the CLI
(``minion-daemon admin``) only.
"""
