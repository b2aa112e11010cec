"""Alembic revisions of the results database, oldest first (``NNNN_name.py``, revision "NNNN")."""
