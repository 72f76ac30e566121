"""Core model shared by every analyzer: findings, artifacts, kinds, budgets, policy, walker, reports."""
