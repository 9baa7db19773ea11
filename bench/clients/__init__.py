"""Load clients; they run inside .venv-bench (picows on uvloop) and talk to run.py on stdio."""
