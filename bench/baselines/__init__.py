"""Other projects measured in the same runs as NoFailMail's benchmarks (not benchmarks themselves:
`make bench` runs bench/*.py only)."""
