"""Integrations with frameworks, each imported only by the programs that use it: importing
minion_daemon imports none of them, and none of the frameworks is a dependency of the package
(the extras ``django`` and ``sqlalchemy`` name them)."""
