"""Commands that need torch (train, evaluate, compare, import) are registered here, on the same group as `check`."""
