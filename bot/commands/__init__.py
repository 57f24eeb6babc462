"""Command groups of ``smsguard`` that live outside ``bot/cli.py`` (which registers them)."""
