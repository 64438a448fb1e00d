"""Example tasks for minion-daemon; registered through the ``minion_daemon.tasks`` entry points."""
