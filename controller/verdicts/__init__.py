"""Verdicts: signing (the one key loader), the tags that carry them, and the promotion gate rule."""
