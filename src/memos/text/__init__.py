"""Text utilities: token counting, lexical tokenisation, time parsing."""
