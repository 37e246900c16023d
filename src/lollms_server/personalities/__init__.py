"""lollms personalities: loading (config.yaml, SOUL.md), applying, and running scripts."""
