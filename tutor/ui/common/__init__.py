"""What several screens share: the terminal, theme, safe text, input and common views."""
