"""Report formats for ``mlgate scan``: text for people, JSON (the contract), SARIF 2.1.0."""
